"""Speed of the sender's motion search (`facecodec.codec.refine`) against one plain render, same run.

    PYTHONPATH=. python3 experiments/refine_bench.py --device cuda --out "$OUT/refine_bench.json"

Times, per frame, the receiver's render (motion network + generator, no gradients; the source side
computed beforehand, as a call does once) and `refine_motion` with 4 and 8 steps (which also
computes the source side once per call), at batch 1 and 8, from the shipped lite weights. Content
does not change the cost, so the frames are random.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from facecodec.codec.pipeline import MotionBatch
from facecodec.kinematics import transform_keypoints
from facecodec.codec.refine import RefineConfig, _Renderer, refine_motion
from facecodec.weights import build_model


def _timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up (cuDNN autotune, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()
    model = build_model("lite").to(args.device).eval()
    k = model.cfg.num_kp
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 8):
        frames = rng.random((batch, 3, 256, 256), dtype=np.float32)
        motion = MotionBatch(rng.normal(0, 5, (batch, 3)).astype(np.float32),
                             rng.normal(0, 0.02, (batch, 3)).astype(np.float32),
                             rng.normal(0, 0.01, (batch, k, 3)).astype(np.float32))
        render = _renderer(model, frames, motion)
        row = {"batch": batch, "render_ms_per_frame": 1000 * _timed(render, args.device, args.repeats) / batch}
        for steps in (4, 8):
            cfg = RefineConfig(steps=steps)
            run = lambda: refine_motion(model, frames[:1], motion[0:1], frames, motion, cfg, batch)  # noqa: E731
            row[f"refine_{steps}_ms_per_frame"] = 1000 * _timed(run, args.device, args.repeats) / batch
        rows.append(row)
        print(row, flush=True)
    doc = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "torch": torch.__version__,
           "threads": torch.get_num_threads(), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2)
    print(json.dumps(doc))


def _renderer(model, frames: np.ndarray, motion: MotionBatch):
    """What the receiver runs per frame (no gradients), the source side computed once beforehand:
    the search's own differentiable render, called without gradients."""
    device = next(model.parameters()).device
    src = torch.from_numpy(frames[:1]).to(device)
    rot, t, exp = (torch.from_numpy(x).to(device) for x in (motion.rotation, motion.translation, motion.expression))
    params = (rot, t, exp)
    with torch.no_grad():  # frame 0's motion serves as the source's
        feats, kp_c = model.appearance(src), model.keypoints(src)
        kp_s = transform_keypoints(kp_c, rot[:1, 0], rot[:1, 1], rot[:1, 2], t[:1], exp[:1])
    render = _Renderer(model, src, feats, kp_c, kp_s)

    def run() -> None:
        with torch.no_grad():
            render(*params)

    return run


if __name__ == "__main__":
    main()
