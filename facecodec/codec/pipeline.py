"""In-process codec pipeline: the sender's encoder and the receiver's decoder, backend-agnostic.

The networks are reached through a `Networks` callable, name + feeds → outputs, keyed by the
`io_spec` tensor names, so the same chaining runs on eager PyTorch, on ONNX Runtime, and inside the
Triton `decoder` model (whose callable issues BLS requests). Arrays are float32 numpy with a
leading batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .. import io_spec
from ..bitstream import Motion, split_batch, stack_batch
from ..bitstream.motion import stack_faces
from ..expression import ExpressionBasis, ExpressionWarp, SourceFace, flow_size, zero_flow

if TYPE_CHECKING:  # torch is imported where it is used: the gRPC client runs this module without it
    from ..models import FaceVid2Vid

Networks = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]


class TorchNetworks:
    """Eager PyTorch behind the `Networks` interface."""

    def __init__(self, model: FaceVid2Vid):
        self.model = model  # for the sender's motion search (`facecodec.codec.refine`), which needs gradients
        self.modules = {
            "motion_encoder": model.motion_encoder(),
            "appearance_encoder": model.appearance_encoder(),
            "warp_decoder": model.warp_decoder(),
        }

    def __call__(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        spec = io_spec.NETWORKS[name]
        with torch.inference_mode():
            out = self.modules[name](*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in spec.input_names))
        out = out if isinstance(out, tuple) else (out,)
        return {n: o.numpy() for n, o in zip(spec.output_names, out)}


class OrtNetworks:
    """ONNX Runtime (CPU) behind the `Networks` interface, one session per exported network."""

    def __init__(self, onnx_dir: str | Path, threads: int = 2):
        from ..runtime import OrtRunner

        self.runners = {name: OrtRunner(Path(onnx_dir) / f"{name}.onnx", threads) for name in io_spec.NETWORKS}
        for runner in self.runners.values():
            runner.activate()

    def __call__(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runners[name].infer(feeds)


@dataclass(frozen=True)
class MotionBatch:
    """Per-frame motion of B frames: rotation (B, 3) degrees (yaw, pitch, roll), translation
    (B, 3), expression (B, K, 3) — exactly the `motion_encoder` outputs — and, with the expression
    channel, each frame's code `face` (B, P) (`facecodec.expression`; None without it)."""

    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    face: np.ndarray | None = None

    def __len__(self) -> int:
        return self.rotation.shape[0]

    def __getitem__(self, index) -> "MotionBatch":
        sl = index if isinstance(index, slice) else slice(index, index + 1)
        face = None if self.face is None else self.face[sl]
        return MotionBatch(self.rotation[sl], self.translation[sl], self.expression[sl], face)

    def with_face(self, face: np.ndarray | None) -> "MotionBatch":
        """The same motion with the expression channel's codes (B, P) (None: without)."""
        return MotionBatch(self.rotation, self.translation, self.expression, face)

    @staticmethod
    def concat(parts: list["MotionBatch"]) -> "MotionBatch":
        fields = ("rotation", "translation", "expression")
        faces = [p.face for p in parts]
        if any(f is None for f in faces) and not all(f is None for f in faces):
            raise ValueError("cannot join motion with and without expression codes")
        face = None if faces[0] is None else np.concatenate(faces)
        return MotionBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields), face)

    def to_motions(self) -> list[Motion]:
        """One bitstream `Motion` per frame (what the sender codes)."""
        rot = self.rotation
        return split_batch(rot[:, 0], rot[:, 1], rot[:, 2], self.translation, self.expression, self.face)

    @staticmethod
    def from_motions(motions: list[Motion]) -> "MotionBatch":
        """The batch of decoded `Motion`s (what the receiver renders), float32."""
        yaw, pitch, roll, t, exp = stack_batch(motions)
        face = stack_faces(motions)
        return MotionBatch(np.stack([yaw, pitch, roll], axis=1), t, exp, face if face.shape[-1] else None)


@dataclass(frozen=True)
class ViewEdit:
    """Receiver-side view change: free-view override/offset of angles (degrees) or frontalise."""

    override: tuple[float | None, float | None, float | None] = (None, None, None)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frontalise: bool = False

    def apply(self, rotation: np.ndarray) -> np.ndarray:
        """rotation (B, 3) degrees → edited rotation (B, 3)."""
        from .. import kinematics

        yaw, pitch, roll = (rotation[:, i] for i in range(3))
        if self.frontalise:
            yaw, pitch, roll = kinematics.frontalise(yaw, pitch, roll)
        yaw, pitch, roll = kinematics.free_view(yaw, pitch, roll, override=self.override, offset=self.offset)
        return np.stack([yaw, pitch, roll], axis=1)


def images_to_batch(frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def keypoints(kp_canonical: np.ndarray, motion: MotionBatch) -> np.ndarray:
    """x = R x_c + t + δ with numpy in and out (no torch): kp_canonical (1 or B, K, 3) → (B, K, 3)."""
    from .. import kinematics

    kp_c = np.broadcast_to(kp_canonical, (len(motion), *kp_canonical.shape[1:]))
    rot = motion.rotation
    return kinematics.transform_keypoints(kp_c, rot[:, 0], rot[:, 1], rot[:, 2], motion.translation, motion.expression)


def encode_frames(networks: Networks, images: np.ndarray, batch: int = 8) -> MotionBatch:
    """Sender: frames (T, 3, S, S) float in [0, 1] → their motion."""
    parts = []
    for i in range(0, len(images), batch):
        out = networks("motion_encoder", {"image": images[i : i + batch]})
        parts.append(MotionBatch(out["rotation"], out["translation"], out["expression"]))
    return MotionBatch.concat(parts)


_BASIS: ExpressionBasis | None = None


def shipped_basis() -> ExpressionBasis:
    """The expression basis every stream of this version refers to (loaded once)."""
    global _BASIS
    if _BASIS is None:
        _BASIS = ExpressionBasis.load()
    return _BASIS


def check_stream(header, *, preset: str, num_kp: int, image_size: int) -> None:
    """A stream header (`bitstream.StreamHeader`) against the networks that will decode it: the
    same preset, keypoints and picture size, and a known expression basis; ValueError says which."""
    wanted = {"preset": preset, "num_kp": num_kp, "height": image_size, "width": image_size}
    for field, value in wanted.items():
        if getattr(header, field) != value:
            raise ValueError(f"the stream's {field} is {getattr(header, field)!r}, "
                             f"the {preset} networks need {value!r}")
    check_expression_basis(header.face_basis)


def check_expression_basis(face_basis: int) -> None:
    """A stream's header names its expression basis (0: none); this receiver knows only the shipped one."""
    if face_basis and face_basis != shipped_basis().id:
        raise ValueError(f"the stream's expression basis {face_basis:08x} is not this decoder's "
                         f"({shipped_basis().id:08x}): decode it with the facecodec version that wrote it")


def expression_warp(face: SourceFace, image_size: int) -> ExpressionWarp:
    """The receiver's expression warp of a source face (the shipped basis) for S×S frames."""
    basis = shipped_basis()
    if face.code.shape != (basis.size,):
        raise ValueError(f"the source face has {face.code.size} expression coefficients, the basis {basis.size}")
    return ExpressionWarp(basis, face, flow_size(image_size), image_size=image_size)


@dataclass
class Receiver:
    """Receiver state of one call: the source's features and keypoints, kept for every frame, and
    with the expression channel the source's face (`ExpressionWarp`)."""

    networks: Networks
    source_image: np.ndarray | None = None  # (1, 3, S, S)
    features: np.ndarray | None = None  # (1, C, D, H, W)
    kp_canonical: np.ndarray | None = None  # (1, K, 3)
    kp_source: np.ndarray | None = None  # (1, K, 3)
    kp_driving_initial: np.ndarray | None = None  # first driving keypoints, for relative motion
    expression: ExpressionWarp | None = None  # None: the source has no face sent, draw its own expression
    face_initial: np.ndarray | None = None  # first driving code (P,), for relative motion

    def set_source(self, source_image: np.ndarray, source_motion: MotionBatch, face: SourceFace | None = None) -> None:
        """source_image (1, 3, S, S) in [0, 1] and its motion (as sent with the keyframe), and its
        face when the stream carries the expression channel."""
        out = self.networks("appearance_encoder", {"source_image": source_image})
        self.source_image, self.features, self.kp_canonical = source_image, out["source_features"], out["kp_canonical"]
        self.kp_source = keypoints(self.kp_canonical, source_motion)
        self.kp_driving_initial, self.face_initial = None, None
        self.expression = None if face is None else expression_warp(face, source_image.shape[-1])

    def expression_flow(self, motion: MotionBatch, relative: bool = False) -> np.ndarray:
        """(B, 3, E, E) expression flows of B frames: the frames' codes against the source's (or,
        relative: against the first driving frame's, applied to the source); zeros without a face."""
        if self.expression is None or motion.face is None or motion.face.shape[-1] == 0:
            return zero_flow(len(motion), flow_size(self.source_image.shape[-1]))
        codes = np.asarray(motion.face, np.float64)
        if relative:
            if self.face_initial is None:
                self.face_initial = codes[0]
            codes = codes - self.face_initial + self.expression.face.code
        return self.expression.flow_of(codes)

    def driving_keypoints(
        self, motion: MotionBatch, view: ViewEdit | None = None, relative: bool = False
    ) -> np.ndarray:
        """Keypoints to render for B frames of motion (B, K, 3).

        relative: motion transfer — apply the change since the first driving frame to the source.
        """
        if view is not None:
            motion = MotionBatch(view.apply(motion.rotation), motion.translation, motion.expression, motion.face)
        kp = keypoints(self.kp_canonical, motion)
        if not relative:
            return kp
        if self.kp_driving_initial is None:
            self.kp_driving_initial = kp[:1]
        from .. import kinematics

        return kinematics.relative_keypoints(self.kp_source, kp, self.kp_driving_initial)

    def render(self, kp_driving: np.ndarray, expression_flow: np.ndarray | None = None) -> np.ndarray:
        """(B, K, 3) driving keypoints, (B, 3, E, E) expression flows (`expression_flow`) or None (the
        source's expression) → frames (B, 3, S, S) in [0, 1]."""
        if self.features is None:
            raise RuntimeError("no source set for this call: send the source keyframe first")
        b = kp_driving.shape[0]
        rep = lambda x: np.repeat(x, b, axis=0)  # noqa: E731
        if expression_flow is None:
            expression_flow = zero_flow(b, flow_size(self.source_image.shape[-1]))
        feeds = {
            "source_image": rep(self.source_image),
            "source_features": rep(self.features),
            "kp_source": rep(self.kp_source),
            "kp_driving": np.ascontiguousarray(kp_driving, np.float32),
            "expression_flow": np.ascontiguousarray(expression_flow, np.float32),
        }
        return self.networks("warp_decoder", feeds)["output_image"]
