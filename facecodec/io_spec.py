"""The one source of truth for the served tensors: names, dtypes and shapes of every model.

Export takes its input/output names and dynamic axes from here, the Triton configs are checked
against it by a test, and clients import the same names. Shapes exclude the batch axis, which is
always the dynamic first axis. Symbols stand for preset-dependent sizes:
S image side, K keypoints, C/D/H/W the source feature volume f_s, E the expression flow's side;
P expression coefficients and N source-face points (the expression channel, not preset-dependent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .expression import NUM_COEFFICIENTS, SOURCE_POINTS

if TYPE_CHECKING:  # a type hint only: io_spec imports no torch (the gRPC client reads it)
    from .models import ModelConfig


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int | str, ...]  # without the batch axis
    doc: str

    def resolve(self, cfg: ModelConfig) -> tuple[int, ...]:
        """Concrete shape (without batch) for a preset."""
        c, d, h, w = cfg.feature_shape
        sizes = {"S": cfg.image_size, "K": cfg.num_kp, "C": c, "D": d, "H": h, "W": w, "E": cfg.expression_flow_size,
                 "P": NUM_COEFFICIENTS, "N": len(SOURCE_POINTS)}
        return tuple(sizes[x] if isinstance(x, str) else x for x in self.shape)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    doc: str

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


IMAGE = TensorSpec("image", "float32", (3, "S", "S"), "RGB frame, NCHW, values in [0, 1]")
SOURCE_IMAGE = TensorSpec("source_image", "float32", (3, "S", "S"), "the call's source image, RGB in [0, 1]")
ROTATION = TensorSpec("rotation", "float32", (3,), "head yaw, pitch, roll in degrees")
TRANSLATION = TensorSpec("translation", "float32", (3,), "head translation t, normalised volume units")
EXPRESSION = TensorSpec("expression", "float32", ("K", 3), "expression deltas δ per keypoint (x, y, z)")
SOURCE_FEATURES = TensorSpec("source_features", "float32", ("C", "D", "H", "W"), "appearance volume f_s")
KP_CANONICAL = TensorSpec("kp_canonical", "float32", ("K", 3), "canonical keypoints x_c in [-1, 1]³")
KP_SOURCE = TensorSpec("kp_source", "float32", ("K", 3), "source-frame keypoints R_s x_c + t_s + δ_s")
KP_DRIVING = TensorSpec("kp_driving", "float32", ("K", 3), "keypoints of the frame to render")
EXPRESSION_FLOW = TensorSpec(
    "expression_flow", "float32", (3, "E", "E"),
    "expression channel on a [-1, 1] grid of the source: where each point reads instead (x, y offsets) and the "
    "mouth cavity's opacity (facecodec.expression); zeros keep the source's expression")
OUTPUT_IMAGE = TensorSpec("output_image", "float32", (3, "S", "S"), "decoded frame, RGB in [0, 1]")

MOTION_ENCODER = ModelSpec(
    "motion_encoder", (IMAGE,), (ROTATION, TRANSLATION, EXPRESSION), "frame → head pose and expression"
)
APPEARANCE_ENCODER = ModelSpec(
    "appearance_encoder", (SOURCE_IMAGE,), (SOURCE_FEATURES, KP_CANONICAL), "source image → f_s, x_c"
)
WARP_DECODER = ModelSpec(
    "warp_decoder",
    (SOURCE_IMAGE, SOURCE_FEATURES, KP_SOURCE, KP_DRIVING, EXPRESSION_FLOW),
    (OUTPUT_IMAGE,),
    "f_s warped from the source to the driving keypoints, the expression flow composed in → frame",
)
NETWORKS: dict[str, ModelSpec] = {m.name: m for m in (MOTION_ENCODER, APPEARANCE_ENCODER, WARP_DECODER)}

# The stateful call session (Triton `decoder`, sequence batcher). Every input is optional at the
# Triton level: which ones a request needs depends on its place in the session (START carries
# `source_image`, later requests carry the motion), and the session logic checks that.
VIEW_OVERRIDE = TensorSpec(
    "view_override", "float32", (3,), "free view: yaw, pitch, roll in degrees replacing the sender's; NaN keeps it"
)
VIEW_OFFSET = TensorSpec("view_offset", "float32", (3,), "free view: degrees added to yaw, pitch, roll")
FRONTALISE = TensorSpec("frontalise", "bool", (1,), "face the camera: angles zeroed before override and offset")
RELATIVE = TensorSpec(
    "relative", "bool", (1,), "motion transfer: apply the motion since the session's first relative frame"
)
# The expression channel (facecodec.expression): P coefficients per frame, the source's face at START.
FACE = TensorSpec("face", "float32", ("P",), "expression channel: the frame's expression code")
SOURCE_FACE_POINTS = TensorSpec(
    "source_face_points", "float32", ("N", 2), "expression channel: the source's moving and anchor landmarks, pixels"
)
SOURCE_FACE_MAP = TensorSpec(
    "source_face_map", "float32", (2, 3), "expression channel: the source's canonical-to-image map"
)
SOURCE_FACE_CODE = TensorSpec("source_face_code", "float32", ("P",), "expression channel: the source's own code")
DECODER = ModelSpec(
    "decoder",
    (SOURCE_IMAGE, ROTATION, TRANSLATION, EXPRESSION, VIEW_OVERRIDE, VIEW_OFFSET, FRONTALISE, RELATIVE,
     FACE, SOURCE_FACE_POINTS, SOURCE_FACE_MAP, SOURCE_FACE_CODE),
    (OUTPUT_IMAGE,),
    "call session: START keeps the source's f_s and keypoints (and face), every request renders one frame",
)
SERVED: dict[str, ModelSpec] = {**NETWORKS, DECODER.name: DECODER}
