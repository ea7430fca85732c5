"""How far can a codec that only MOVES the keyframe's pixels go on identity (AED)?

    .venv/bin/python experiments/aed_oracle.py --manifest ../shared/data/faces/MANIFEST.tsv

For each validation clip (the identities `facecodec eval` uses), the decoded WebP keyframe is warped
to every frame by dense optical flow measured on the real frame (OpenCV DIS, frame → keyframe): an
oracle with the exact per-pixel motion that facecodec sends as 15 keypoints. It draws nothing new
(no inner mouth, no teeth), so it answers one question: is the repeat-source baseline's AED out of
reach for any warping decoder, or only for a warp as coarse as ours? Prints the metrics of
`facecodec eval` (AlexNet LPIPS) for the oracle and the baseline per clip and their means.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facecodec.bitstream import decode_keyframe, encode_keyframe
from facecodec.eval.compare import Evaluator
from facecodec.eval.metrics import nanmean
from facecodec.eval.run import validation_clips
from facecodec.media import read_video
from facecodec.train.dense_flow import measure_flow

SHOWN = ("psnr", "lpips_alex", "akd", "aed", "pose_err")


def dense_flows(frames: np.ndarray, keyframe: np.ndarray) -> np.ndarray:
    """DIS optical flow from each of `frames` (T, S, S, 3) uint8 to `keyframe` (S, S, 3): for each
    output pixel, where it is in the keyframe → (T, S, S, 2) px."""
    return np.stack([measure_flow(f, keyframe) for f in frames])


def warp_by(keyframe: np.ndarray, flows: np.ndarray, flow_size: int | None = None) -> np.ndarray:
    """`keyframe` moved by each of `flows` (`dense_flows`) → (T, S, S, 3) uint8. `flow_size`: first
    area-average the flow to flow_size² and bring it back bilinearly, as coarse as a motion network at
    that size (lite: 32²) — the best such a field could do."""
    ys, xs = np.mgrid[0 : keyframe.shape[0], 0 : keyframe.shape[1]].astype(np.float32)
    out = []
    for flow in flows:
        if flow_size:
            coarse = cv2.resize(flow, (flow_size, flow_size), interpolation=cv2.INTER_AREA)
            flow = cv2.resize(coarse, flow.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        out.append(cv2.remap(keyframe, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def flow_oracle(frames: np.ndarray, keyframe: np.ndarray, flow_size: int | None = None) -> np.ndarray:
    """The oracle for `frames` (T, S, S, 3) uint8: the keyframe warped by their measured flow."""
    return warp_by(keyframe, dense_flows(frames, keyframe), flow_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=Path("../shared/data/faces/MANIFEST.tsv"))
    parser.add_argument("--max-frames", type=int, default=60)
    parser.add_argument("--flow-sizes", type=int, nargs="*", default=[32, 64],
                        help="also the oracle with its flow reduced to these sizes² (the lite motion network: 32²)")
    args = parser.parse_args()
    evaluator, rows = Evaluator(lpips_nets=("alex",)), []
    print("| clip | output | " + " | ".join(SHOWN) + " |\n|---|---|" + "---|" * len(SHOWN))
    for clip in validation_clips(args.manifest):
        frames = read_video(clip, max_frames=args.max_frames)
        h, w = frames.shape[1:3]
        keyframe = decode_keyframe(encode_keyframe(frames[0]), h, w)  # what the receiver holds
        flows = dense_flows(frames, keyframe)  # once: the coarse oracles average the same flow
        outputs = {"flow oracle": warp_by(keyframe, flows),
                   **{f"flow oracle at {n}²": warp_by(keyframe, flows, n) for n in args.flow_sizes},
                   "repeat source": keyframe[None]}
        metrics = evaluator.compare(frames, evaluator.analyse(frames),
                                    {k: (v, evaluator.analyse(v)) for k, v in outputs.items()})
        row = {k: {m: nanmean(metrics[k][m]) for m in SHOWN} for k in outputs}
        rows.append(row)
        for k, means in row.items():
            print(f"| {clip.stem} | {k} | " + " | ".join(f"{means[m]:.3f}" for m in SHOWN) + " |", flush=True)
    for k in rows[0]:
        print(f"| **mean of clips** | {k} | " + " | ".join(f"{np.mean([r[k][m] for r in rows]):.3f}" for m in SHOWN)
              + " |")
    evaluator.close()


if __name__ == "__main__":
    main()
