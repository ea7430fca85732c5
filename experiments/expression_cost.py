"""What does the expression channel cost a frame? The receiver's networks (motion_encoder + warp_decoder,
batch 1, ONNX Runtime, 2 threads) with the expression flow against the same networks exported before
the channel existed, interleaved in one run, plus the receiver's thin-plate flow and the sender's
MediaPipe landmarks per frame.

    git worktree add /tmp/before <commit before the channel>        # e.g. 43db45a
    (cd /tmp/before && PYTHONPATH=. python -m facecodec.cli export --preset lite --out /tmp/onnx_before)
    PYTHONPATH=. python -m facecodec.cli export --preset lite --out /tmp/onnx_after
    PYTHONPATH=. python experiments/expression_cost.py /tmp/onnx_before /tmp/onnx_after
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from facecodec.codec.pipeline import expression_warp
from facecodec.expression import ExpressionBasis
from facecodec.landmarks import FaceLandmarker
from facecodec.media import read_video

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "talking_00086_4s.mp4"


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(before: Path, after: Path, frames: int = 40, repeats: int = 3) -> dict:
    clip = read_video(SAMPLE, max_frames=frames)
    images = clip.transpose(0, 3, 1, 2).astype(np.float32)[:, None] / 255
    with FaceLandmarker() as landmarker:
        start = time.perf_counter()
        points = landmarker.detect(clip, depth=True)
        mediapipe_ms = (time.perf_counter() - start) / len(clip) * 1e3
    basis = ExpressionBasis.load()
    warp = expression_warp(basis.source_face(points[0]), clip.shape[1])
    start = time.perf_counter()
    flows = [warp.flow_of(basis.code(p)[None]) for p in points]
    flow_ms = (time.perf_counter() - start) / len(points) * 1e3
    nets = {tag: {n: session(d / f"{n}.onnx") for n in ("motion_encoder", "appearance_encoder", "warp_decoder")}
            for tag, d in (("before", before), ("after", after))}
    features, kp = nets["before"]["appearance_encoder"].run(None, {"source_image": images[0]})

    def frame(tag: str, i: int) -> None:
        nets[tag]["motion_encoder"].run(None, {"image": images[i]})
        feeds = {"source_image": images[0], "source_features": features, "kp_source": kp,
                 "kp_driving": kp + 0.01 * (i % 5)}
        if tag == "after":
            feeds["expression_flow"] = flows[i]
        nets[tag]["warp_decoder"].run(None, feeds)

    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(repeats):
        for tag in times:  # interleaved: both see the same machine load
            for i in range(len(images)):
                start = time.perf_counter()
                frame(tag, i)
                times[tag].append(time.perf_counter() - start)
    out = {f"{k}_ms": float(np.median(v) * 1e3) for k, v in times.items()}
    out.update(ratio=out["after_ms"] / out["before_ms"], receiver_flow_ms=flow_ms, sender_mediapipe_ms=mediapipe_ms)
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))
