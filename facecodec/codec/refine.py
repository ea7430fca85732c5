"""Sender-side motion search: refine the motion encoder's estimate by analysis-by-synthesis.

The sender holds everything the receiver has (the source keyframe and the networks), so, like a
video encoder's motion search, it can try the motion it is about to send: render the frame the
receiver will draw and move yaw/pitch/roll, t and δ down the gradient of the difference to the
real frame. The bitstream and the receiver are unchanged; only the numbers sent get better.

Why: the motion encoder reads unseen faces worst on large motions (a misread translation or a
yaw read at 10° that is 40°); the generator can draw the right motion when it is given it. What
the generator cannot draw (an opening mouth, a blink: the lite model mostly moves the source's
pixels) no motion search can find.

Cost: each step is one forward and backward pass of the motion network and generator: with 8
steps and 8 frames at a time ≈ 15 ms per frame on an H200 and ≈ 0.7 s on two CPU cores, 14–19× the
receiver's render at that batch (`experiments/refine_bench.py`, `docs/benchmarks.md`): a GPU-sender or offline mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..expression import SourceFace
from ..kinematics import transform_keypoints
from ..models import FaceVid2Vid
from .pipeline import MotionBatch, Networks


@dataclass(frozen=True)
class RefineConfig:
    """Adam on the per-frame motion; step sizes in the motion's own units."""

    steps: int = 8
    lr_angle: float = 1.0  # degrees per step
    lr_shift: float = 0.01  # t, normalised units (the image spans 2)
    lr_expression: float = 0.01  # δ, same units (0.005: AKD 4.05 px, AED 0.271; 0.01: 3.86, 0.275; 0: lp_d12 fails)
    coarse_weight: float = 1.0  # L1 at 1/4 resolution too: a wider basin for large misreads
    smoothing: tuple[float, ...] = (1.0, 2.0, 1.0)  # centred taps over the searched frames (`smooth_motion`); () = off


def _loss(out: torch.Tensor, target: torch.Tensor, coarse_weight: float) -> torch.Tensor:
    """Per-frame L1 at full and at quarter resolution → (B,). (The training's AlexNet features
    as a third term changed nothing measurable: +0.15 dB, identity distance a little worse.)"""
    fine = (out - target).abs().mean(dim=(1, 2, 3))
    coarse = (F.avg_pool2d(out, 4) - F.avg_pool2d(target, 4)).abs().mean(dim=(1, 2, 3))
    return fine + coarse_weight * coarse


def refine_motion(model: FaceVid2Vid, source_image: np.ndarray, source_motion: MotionBatch, frames: np.ndarray,
                  motion: MotionBatch, cfg: RefineConfig = RefineConfig(), batch: int = 8,
                  flows: np.ndarray | None = None) -> MotionBatch:
    """source_image (1, 3, S, S) and frames (T, 3, S, S) float in [0, 1]; source_motion (1 frame) and
    motion (T frames) from the motion encoder → refined motion (T frames; expression codes kept as
    they are). flows (T, 3, E, E): the expression channel's flows the receiver will compose, or None.

    Batches run in order. Each frame starts from the best of: its encoder estimate; that estimate
    plus the correction found for the previous batch's last frame (an encoder that misreads a face
    misreads it the same way from frame to frame, so corrections accumulate past what `steps` alone
    can move); and the source's own motion (≈ repeating the source, the floor a codec must beat).
    The result is the lowest-loss motion seen."""
    if cfg.steps <= 0:
        return motion
    device = next(model.parameters()).device
    tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)  # noqa: E731
    src = tensor(source_image)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            features, kp_c = model.appearance(src), model.keypoints(src)
            rot_s = tensor(source_motion.rotation)
            kp_s = transform_keypoints(kp_c, rot_s[:, 0], rot_s[:, 1], rot_s[:, 2], tensor(source_motion.translation),
                                       tensor(source_motion.expression))
        render = _Renderer(model, src, features, kp_c, kp_s)
        still = [tensor(x) for x in _fields(source_motion)]  # the source's own motion: ≈ repeat the source
        parts, correction = [], None
        bar = tqdm(total=len(motion), desc="motion search", unit="frame", leave=False, disable=None)  # None: tty only
        for i in range(0, len(motion), batch):
            start = [tensor(x) for x in _fields(motion[i : i + batch])]
            n = len(start[0])
            candidates = [start, [x.expand(n, *x.shape[1:]) for x in still]]
            if correction is not None:
                candidates.append([s + c for s, c in zip(start, correction)])
            flow = None if flows is None else tensor(flows[i : i + batch])
            refined = _refine_batch(partial(render, flow=flow), tensor(frames[i : i + batch]), candidates, cfg)
            correction = [r[-1:] - s[-1:] for r, s in zip(refined, start)]
            parts.append(MotionBatch(*(x.cpu().numpy() for x in refined), motion[i : i + batch].face))
            bar.update(n)
        bar.close()
    finally:
        model.train(was_training)
    return MotionBatch.concat(parts)


def _fields(m: MotionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return m.rotation, m.translation, m.expression


class _Renderer:
    """The receiver's render of one source as a differentiable function of the driving motion."""

    def __init__(self, model: FaceVid2Vid, src: torch.Tensor, features: torch.Tensor, kp_c: torch.Tensor,
                 kp_s: torch.Tensor):
        self.model, self.src, self.features, self.kp_c, self.kp_s = model, src, features, kp_c, kp_s

    def __call__(self, rot: torch.Tensor, t: torch.Tensor, exp: torch.Tensor,
                 flow: torch.Tensor | None = None) -> torch.Tensor:
        """rot (B, 3) degrees, t (B, 3), exp (B, K, 3), expression flow (B, 3, E, E) or None →
        frames (B, 3, S, S)."""
        b = rot.shape[0]
        rep = lambda x: x.expand(b, *x.shape[1:])  # noqa: E731
        kp_d = transform_keypoints(rep(self.kp_c), rot[:, 0], rot[:, 1], rot[:, 2], t, exp)
        deformation, occlusion, _ = self.model.motion(rep(self.features), rep(self.kp_s), kp_d)
        return self.model.generator(rep(self.features), deformation, occlusion, rep(self.src), flow)


def _refine_batch(render: Callable[..., torch.Tensor], target: torch.Tensor, candidates: list[list[torch.Tensor]],
                  cfg: RefineConfig) -> list[torch.Tensor]:
    """Adam from the best of `candidates` (each a (rot, t, exp) for the batch) per frame; returns
    the best (rot, t, exp) seen per frame."""
    objective = lambda out: _loss(out, target, cfg.coarse_weight)  # noqa: E731
    start = candidates[0]
    if len(candidates) > 1:
        with torch.no_grad():
            losses = torch.stack([objective(render(*c)) for c in candidates])
            pick = losses.argmin(0)  # (B,) index of the best candidate per frame
            rows = torch.arange(len(pick), device=pick.device)
            start = [torch.stack([c[i] for c in candidates])[pick, rows] for i in range(3)]
    params = [s.detach().clone().requires_grad_(True) for s in start]
    optimiser = torch.optim.Adam([{"params": [params[0]], "lr": cfg.lr_angle},
                                  {"params": [params[1]], "lr": cfg.lr_shift},
                                  {"params": [params[2]], "lr": cfg.lr_expression}])
    best = [s.detach().clone() for s in start]
    best_loss = torch.full((target.shape[0],), float("inf"), device=target.device)
    with torch.enable_grad():
        for step in range(cfg.steps + 1):
            loss = objective(render(*params))
            better = loss.detach() < best_loss
            best_loss = torch.where(better, loss.detach(), best_loss)
            for kept, p in zip(best, params):
                kept[better] = p.detach()[better]
            if step == cfg.steps:
                break
            # grads of the motion only: the weights' grads would cost time and are not wanted
            for p, g in zip(params, torch.autograd.grad(loss.sum(), params)):
                p.grad = g
            optimiser.step()
    return best


def smooth_motion(motion: MotionBatch, taps: tuple[float, ...]) -> MotionBatch:
    """A centred FIR filter over frames (taps normalised to sum 1, ends held) on every motion field.

    Why: each frame's search ends wherever its own steps stop, so the searched motion jitters from
    frame to frame (landmark jitter 2–3× the camera's on steady clips); (1, 2, 1) halves that, saves
    ≈ 1 kbit/s and costs a live sender one frame of look-ahead (`docs/benchmarks.md`)."""
    if len(taps) <= 1 or len(motion) < 2:
        return motion
    k = np.asarray(taps, np.float32) / np.sum(taps)
    r = len(k) // 2

    def run(x: np.ndarray) -> np.ndarray:
        padded = np.concatenate([x[:1].repeat(r, 0), x, x[-1:].repeat(r, 0)])
        return sum(k[j] * padded[j : j + len(x)] for j in range(len(k))).astype(x.dtype)

    # the expression codes are the landmarks' measurement, not the search's: kept as they are
    return MotionBatch(run(motion.rotation), run(motion.translation), run(motion.expression), motion.face)


def refine_call(model: FaceVid2Vid, frames: np.ndarray, motion: MotionBatch, keyframe: np.ndarray,
                face: SourceFace | None = None, *, cfg: RefineConfig = RefineConfig(), batch: int = 8) -> MotionBatch:
    """The search for a one-shot call: frames (T, S, S, 3) uint8 with the encoder's motion (T frames)
    and the keyframe (S, S, 3) uint8 as the receiver decodes it (the same lossy image, not the camera
    frame), with its face when the stream carries the expression channel (the search then renders
    the expression the receiver will draw); frame 0 is the source, so frames 1… are searched against
    that keyframe, then smoothed over time (`cfg.smoothing`). Frame 0's motion is sent as it is: it
    defines the source keypoints on both sides."""
    from .pipeline import expression_warp, images_to_batch

    flows = None
    if face is not None and motion.face is not None:
        flows = expression_warp(face, keyframe.shape[0]).flow_of(motion.face[1:])
    rest = refine_motion(model, images_to_batch(keyframe[None]), motion[0:1], images_to_batch(frames[1:]), motion[1:],
                         cfg, batch, flows)
    return MotionBatch.concat([motion[0:1], smooth_motion(rest, cfg.smoothing) if cfg.steps > 0 else rest])


def motion_search(networks: Networks, cfg: RefineConfig = RefineConfig(), batch: int = 8):
    """The search as the `codec.sender.MotionSearch` callable the sender takes
    (`codec.Sender`, hence `facecodec encode` and `facecodec eval`)."""
    model = getattr(networks, "model", None)
    if model is None:  # gradients: eager PyTorch only
        raise ValueError("the motion search needs the PyTorch networks (TorchNetworks), not ONNX Runtime")
    return partial(refine_call, model, cfg=cfg, batch=batch)


def add_refine_argument(parser) -> None:
    """`--refine STEPS` on a command that encodes (0 = off)."""
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="sender-side motion search (facecodec.codec.refine): STEPS gradient steps per frame, "
                        "eager "
                        "PyTorch; ≈ 0.7 s/frame on 2 CPU cores at 8 steps. Not with --refresh. Default 0 = off")
