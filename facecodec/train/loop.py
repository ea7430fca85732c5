"""`facecodec train`: the resumable training loop.

Run directory layout:
  config.json        TrainConfig + the model preset
  split.json         train / validation identities (validation is never trained on)
  checkpoint.pt      model, optimiser, step, wall time, RNG states (written atomically)
  losses.jsonl       averaged loss terms every `log_every` steps
  validation.jsonl   quick validation vs the repeat-source baseline
  losses.png         the loss plot;  samples/step_XXXXXXX.png  the sample grids
"""

from __future__ import annotations

import json
import logging
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..models import FaceVid2Vid, ModelConfig
from ..presets import get_preset
from .config import TrainConfig
from .data import PairBatch, PairSampler, load_clips, sample_pose_frames
from .forward import (
    apply_affine_image,
    init_for_training,
    parameter_groups,
    random_affine,
    random_views,
    run_model,
)
from .dense_flow import dense_flow_targets
from .losses import TrainingLoss
from ..perceptual import StLpips
from .face_labels import compute_face_labels
from ..identity_split import split_identities
from .validate import validate, validation_set
from .viz import plot_losses, sample_grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    data: Path  # the folder of clips (…/faces/train); the manifest is its parent's MANIFEST.tsv
    out: Path
    cache: Path

    @property
    def manifest(self) -> Path:
        return self.data.parent / "MANIFEST.tsv"

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"


@dataclass
class State:
    model: FaceVid2Vid
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    step: int = 0
    wall_s: float = 0.0
    device: str = "cpu"


def build_state(cfg: TrainConfig, model_cfg: ModelConfig | None = None) -> State:
    """Fresh model (the preset, or an explicit architecture for tests) and optimiser."""
    torch.manual_seed(cfg.seed)
    model = FaceVid2Vid(model_cfg or get_preset(cfg.preset))
    init_for_training(model, cfg.blend_init_bias)
    # fused: one kernel over all 7.9 M parameters; the per-tensor loop cost ~20 % of a CPU step
    groups = parameter_groups(model, cfg.lr, cfg.head_lr_scale)
    opt = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, fused=True)
    return State(model.train(), opt, np.random.default_rng(cfg.seed))


def save_checkpoint(state: State, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "step": state.step, "wall_s": state.wall_s, "config": state.model.cfg.to_json(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": state.rng.bit_generator.state,
        "python_rng": random.getstate(),
    }, tmp)
    tmp.replace(path)  # atomic: a kill mid-write keeps the previous checkpoint


def load_checkpoint(state: State, path: Path) -> None:
    ck = torch.load(path, map_location="cpu", weights_only=True)  # tensors, numbers and strings only: no code runs
    state.model.load_state_dict(ck["model"])
    state.optimizer.load_state_dict(ck["optimizer"])
    state.step, state.wall_s = ck["step"], ck["wall_s"]
    torch.set_rng_state(ck["torch_rng"])
    state.rng.bit_generator.state = ck["numpy_rng"]
    random.setstate(ck["python_rng"])
    log.info("resumed from %s at step %d (%.0f s trained)", path, state.step, state.wall_s)


def _apply_learning_rates(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int) -> None:
    """The run's config decides the learning rates (a resumed optimiser would keep the checkpoint's),
    ramped up linearly over the first `warmup_steps`: a fresh Adam moves every weight by ≈ lr at
    once, which knocks a warm-started model back before it improves."""
    scale = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    main, heads = optimizer.param_groups
    main["lr"], heads["lr"] = cfg.lr * scale, cfg.lr * cfg.head_lr_scale * scale


def prepare_run(cfg: TrainConfig, paths: RunPaths):
    """Split, caches, samplers; writes config.json and split.json."""
    train_ids, val_ids = split_identities(paths.manifest)
    paths.out.mkdir(parents=True, exist_ok=True)
    (paths.out / "config.json").write_text(cfg.to_json())
    (paths.out / "split.json").write_text(json.dumps({"train": train_ids, "validation": val_ids}, indent=2))
    root = paths.data.parent
    train = load_clips(root, paths.manifest, train_ids, paths.cache, frame_stride=cfg.frame_stride)
    val = load_clips(root, paths.manifest, val_ids, paths.cache, frame_stride=cfg.frame_stride)
    poses, landmarks = _face_labels([c.path for c in train], cfg)
    return train, val, poses, landmarks


def _face_labels(paths: list[Path], cfg: TrainConfig):
    """(poses, landmarks), each None when its losses are off or mediapipe is missing."""
    w = cfg.losses
    if w.head_pose == w.head_pose_bins == w.landmark_flow == w.freeview_flow == w.dense_flow == 0:
        return None, None
    try:
        poses, landmarks = compute_face_labels(paths)
    except ImportError as err:  # mediapipe is optional: train without the pseudo-label terms
        log.warning("no face pseudo-labels (%s); the head-pose and landmark losses are off", err)
        return None, None
    wants_poses = w.head_pose or w.head_pose_bins or w.freeview_flow
    wants_landmarks = w.landmark_flow or w.freeview_flow or w.dense_flow
    return (poses if wants_poses else None), (landmarks if wants_landmarks else None)


@dataclass(frozen=True)
class StepInputs:
    """Everything a step draws at random: the batch, the equivariance warp, free-view edits, extra
    pose frames and the dense-flow targets (all on the CPU; `optimise_on` moves them)."""

    batch: PairBatch
    theta: torch.Tensor
    views: torch.Tensor | None = None
    pose_frames: tuple[torch.Tensor, torch.Tensor] | None = None
    flow_targets: tuple[torch.Tensor, torch.Tensor] | None = None
    expression_flows: torch.Tensor | None = None  # (B·N, 3, E, E), `train.expression`


def prepare_step(sampler: PairSampler, rng: np.random.Generator, cfg: TrainConfig) -> StepInputs:
    """Sample a batch and a random affine warp for the equivariance term (and the other random inputs)."""
    batch = sampler.sample(cfg.sources_per_batch)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    theta = random_affine(batch.drivings.shape[0] * batch.drivings.shape[1], cfg.equivariance_max_rotation,
                          cfg.equivariance_max_scale, cfg.equivariance_max_shift, generator=gen)
    views = None
    if cfg.losses.freeview_flow and batch.landmarks is not None and batch.pose_labels is not None:
        views = random_views(len(batch.sources), rng, cfg.view_max_angle, cfg.view_frontalise_share)
    pose_frames = None
    if cfg.pose_frames_per_step and batch.pose_labels is not None:
        pose_frames = sample_pose_frames(sampler, cfg.pose_frames_per_step)
    flow_targets = None
    if cfg.losses.dense_flow and batch.landmarks is not None:
        flow_targets = dense_flow_targets(batch.sources, batch.drivings, batch.landmarks)
    expression_flows = None
    if cfg.expression_channel:
        expression_flows = _expression_flows(batch, cfg)
    return StepInputs(batch, theta, views, pose_frames, flow_targets, expression_flows)


def _expression_flows(batch: PairBatch, cfg: TrainConfig) -> torch.Tensor:
    from ..codec.pipeline import shipped_basis
    from ..expression import NUM_LANDMARKS
    from ..presets import get_preset
    from .expression import batch_expression_flows

    if batch.landmarks is None or batch.landmarks.shape[2] != NUM_LANDMARKS or batch.landmarks.shape[3] != 3:
        raise ValueError("the expression channel needs all 478 cached landmarks with depth (the landmark losses on)")
    preset = get_preset(cfg.preset)
    return batch_expression_flows(batch.landmarks, batch.flipped, shipped_basis(), preset.expression_flow_size,
                                  preset.image_size)


class Prefetcher:
    """Prepares the next `depth` steps' inputs on a background thread while the current step runs.

    Why: on a GPU the sampler (frame decode, augmentation) and the DIS targets are CPU work the
    device would otherwise wait for every step; both release the GIL for most of their time. The
    thread is the only user of the sampler and the RNG, so the batches come in the order and with
    the values they would without it; a checkpoint then saves the RNG up to `depth` batches ahead,
    so a resumed run skips those (a different, equally random, sequence).
    """

    def __init__(self, make: Callable[[], StepInputs], depth: int):
        self._make, self._queue, self._stop = make, queue.Queue(maxsize=depth), threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._make()
            except BaseException as err:  # handed to the consumer, raised there
                item = err
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self) -> StepInputs:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def train_step(state: State, loss_fn: TrainingLoss, sampler: PairSampler, cfg: TrainConfig,
               inputs: StepInputs | None = None) -> dict[str, float]:
    """One optimiser step on `inputs` (prepared ahead by a `Prefetcher`) or on a batch drawn now."""
    _apply_learning_rates(state.optimizer, cfg, state.step)
    x = inputs or prepare_step(sampler, state.rng, cfg)
    return optimise_on(state, loss_fn, x.batch, x.theta, cfg.grad_clip, x.views, x.pose_frames, x.flow_targets,
                       x.expression_flows)


def optimise_on(state: State, loss_fn: TrainingLoss, batch: PairBatch, theta: torch.Tensor,
                grad_clip: float, view_angles: torch.Tensor | None = None,
                pose_frames: tuple[torch.Tensor, torch.Tensor] | None = None,
                flow_targets: tuple[torch.Tensor, torch.Tensor] | None = None,
                expression_flows: torch.Tensor | None = None) -> dict[str, float]:
    """Forward, all losses, backward, clipped Adam step on one given batch; → logged loss terms."""
    dev = state.device
    sources, drivings, theta = batch.sources.to(dev), batch.drivings.to(dev), theta.to(dev)
    labels = batch.pose_labels.to(dev) if batch.pose_labels is not None else None
    landmarks = batch.landmarks.to(dev) if batch.landmarks is not None else None
    views = view_angles.to(dev) if view_angles is not None else None
    flows = expression_flows.to(dev) if expression_flows is not None else None
    out = run_model(state.model, sources, drivings, apply_affine_image(drivings.flatten(0, 1), theta), views, flows)
    if flow_targets is not None:
        flow_targets = tuple(x.to(dev) for x in flow_targets)
    terms = loss_fn.terms(out, sources, drivings, theta, labels, landmarks, views, flow_targets)
    if pose_frames is not None:
        images, frame_labels = (x.to(dev) for x in pose_frames)
        logits = torch.stack(state.model.head_pose(images)[:3], dim=1)
        terms.update({f"{k}_frames": v for k, v in loss_fn.pose_terms(logits, frame_labels).items()})
    total, terms = loss_fn.weighted(terms)
    state.optimizer.zero_grad(set_to_none=True)
    total.backward()
    _clip_gradients(state.model, grad_clip)
    state.optimizer.step()
    state.step += 1
    return {"total": float(total.detach()), **terms}


def _clip_gradients(model: torch.nn.Module, max_norm: float) -> None:
    """Rescale only when the norm is over the limit: on CPU the unconditional per-tensor multiply
    of `clip_grad_norm_` costs several percent of a step."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if norm > max_norm:
        torch.nn.utils.clip_grads_with_norm_(model.parameters(), max_norm, norm)


class _Stop:
    """SIGTERM/SIGINT → finish the current step, checkpoint, exit cleanly."""

    def __init__(self):
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, *_):
        self.requested = True


def train(cfg: TrainConfig, paths: RunPaths, steps: int, resume: bool = False, device: str = "cpu",
          init_from: Path | None = None, max_minutes: float | None = None) -> State:
    """Train until `steps` total steps, `max_minutes` of wall time in this call, or a stop signal;
    returns the final state (checkpointed).

    `init_from`: start a new run from another run's checkpoint.pt or from shipped weights
    (.safetensors) — model weights only: fresh optimiser, step 0. This is how a run continues under
    changed losses, or on another machine, without rewriting the old run's history.
    """
    torch.set_num_threads(cfg.threads)
    if device == "cuda":  # TF32 convolutions: ~2× on Ampere/Hopper, far below the losses' noise
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes every step
    train_clips, val_clips, poses, landmarks = prepare_run(cfg, paths)
    state = build_state(cfg)
    state.model.to(device)  # before loading: the optimiser state is placed beside its parameters
    state.device = device
    if resume and paths.checkpoint.is_file():
        load_checkpoint(state, paths.checkpoint)
    elif init_from is not None:
        state.model.load_state_dict(_initial_weights(init_from))
        log.info("initialised from %s", init_from)
    loss_fn = TrainingLoss(cfg.losses).to(device)
    sampler = PairSampler(train_clips, cfg.drivings_per_source, state.rng, augment=True, poses=poses,
                          landmarks=landmarks, pose_balance=cfg.pose_balance)
    val_data = validation_set(val_clips, cfg.validation_pairs // max(1, len(val_clips)))
    val_data = type(val_data)(val_data.sources.to(device), val_data.drivings.to(device))
    metrics = {"alex": StLpips("alex").to(device)}
    _loop(state, loss_fn, sampler, cfg, paths, val_data, metrics, steps, max_minutes)
    return state


def _initial_weights(path: Path) -> dict[str, torch.Tensor]:
    """Model state from a run's checkpoint.pt, or from shipped fp16 weights (as float32)."""
    if path.suffix == ".safetensors":
        from ..weights import load_weights

        return load_weights(path).state_dict()
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _loop(state, loss_fn, sampler, cfg, paths, val_data, metrics, steps, max_minutes=None) -> None:
    stop, window = _Stop(), []
    last_ck, t_start, wall0 = time.monotonic(), time.monotonic(), state.wall_s
    deadline = t_start + max_minutes * 60 if max_minutes else float("inf")
    if state.step == 0:  # where the initialisation stands (≈ the repeat-source baseline, by design)
        _validate(state, val_data, metrics, paths)
    bar = tqdm(total=steps, initial=state.step, desc="train", dynamic_ncols=True)
    ahead = Prefetcher(lambda: prepare_step(sampler, state.rng, cfg), cfg.prefetch) if cfg.prefetch else None
    try:
        while state.step < steps and not stop.requested and time.monotonic() < deadline:
            window.append(train_step(state, loss_fn, sampler, cfg, ahead.next() if ahead else None))
            state.wall_s = wall0 + time.monotonic() - t_start
            bar.update(1)
            if state.step % cfg.log_every == 0:
                row = _log_row(window, state, paths.out / "losses.jsonl")
                bar.set_postfix(loss=f"{row['total']:.3f}")
                window = []
            if state.step % cfg.sample_every == 0 or state.step == 1:
                sample_grid(state.model, val_data.sources[:4], val_data.drivings[:4, :1],
                            paths.out / "samples" / f"step_{state.step:07d}.png")
            if state.step % cfg.validate_every == 0:
                _validate(state, val_data, metrics, paths)
            if time.monotonic() - last_ck > cfg.checkpoint_minutes * 60:
                _checkpoint(state, paths)
                last_ck = time.monotonic()
    finally:
        if ahead is not None:
            ahead.close()
    bar.close()
    _checkpoint(state, paths)


def _log_row(window: list[dict[str, float]], state: State, path: Path) -> dict[str, float]:
    """Mean of each term over the window since the last row, appended to losses.jsonl."""
    means = {k: float(np.mean([w.get(k, np.nan) for w in window])) for k in window[-1]}
    row = {"step": state.step, "wall_s": round(state.wall_s, 1), **means}
    _append_jsonl(row, path)
    return row


def _append_jsonl(row: dict, path: Path) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _validate(state: State, val_data, metrics, paths: RunPaths) -> dict[str, float]:
    result = {"step": state.step, "wall_s": round(state.wall_s, 1), **validate(state.model, val_data, metrics)}
    _append_jsonl(result, paths.out / "validation.jsonl")
    log.info("validation at %d: %s", state.step, {k: round(v, 4) for k, v in result.items()})
    return result


def _checkpoint(state: State, paths: RunPaths) -> None:
    save_checkpoint(state, paths.checkpoint)
    log_path = paths.out / "losses.jsonl"
    if log_path.is_file():
        plot_losses(log_path, paths.out / "losses.png", paths.out / "validation.jsonl")
