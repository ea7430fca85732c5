"""Frame-to-frame jitter of the decoded call with the sender's motion search, with and without its
temporal smoothing (`RefineConfig.smoothing`), beside the camera's own and the plain encoder's.

    .venv/bin/python experiments/search_jitter.py ../shared/data/faces/train/retalking_1__video_1.mp4 …

Jitter (`facecodec.eval.metrics.jitter`, also in `facecodec eval`'s report) = mean length of the
landmarks' second difference over time (px per frame², 478 MediaPipe landmarks at 256²): what a
viewer sees as shaking. The camera's figure is the floor for steady speech; a decoded call far above
it shakes. Also prints the quality metrics of `facecodec eval` and the motion rate, each clip's
first 60 frames through the real bitstream.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from facecodec.eval.codec import self_reenact
from facecodec.eval.compare import Evaluator
from facecodec.eval.metrics import jitter
from facecodec.media import read_video
from facecodec.codec.pipeline import TorchNetworks
from facecodec.codec.refine import RefineConfig, motion_search
from facecodec.weights import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--max-frames", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = build_model("lite").eval()
    networks = TorchNetworks(model)
    searched = RefineConfig()
    senders = {"plain encoder": None,
               "search, unsmoothed": motion_search(networks, dataclasses.replace(searched, smoothing=())),
               f"search, smoothed {searched.smoothing}": motion_search(networks, searched)}
    evaluator, rows = Evaluator(lpips_nets=("alex",)), {}
    for clip in args.clips:
        frames = read_video(clip, max_frames=args.max_frames)
        faces = evaluator.analyse(frames)
        print(f"{clip.stem}: camera jitter {jitter(faces.landmarks):.3f}", flush=True)
        for name, search in senders.items():
            run = self_reenact(networks, frames, preset="lite", num_kp=model.cfg.num_kp, search=search)
            decoded = evaluator.analyse(run.frames)
            metrics = evaluator.compare(frames, faces, {name: (run.frames, decoded)})[name]
            row = {k: float(np.nanmean(v)) for k, v in metrics.items()}
            row.update(jitter=jitter(decoded.landmarks), motion_kbps=run.motion_kbps)
            rows.setdefault(name, []).append(row)
            print(f"  {name:32s}" + " ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    print("mean of clips:")
    for name, clip_rows in rows.items():
        print(f"  {name:32s}" + " ".join(f"{k} {np.mean([r[k] for r in clip_rows]):.3f}" for k in clip_rows[0]))
    evaluator.close()


if __name__ == "__main__":
    main()
