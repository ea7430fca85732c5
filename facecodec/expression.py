"""The expression channel: mouth, eyes, brows and jaw as a few numbers per frame, and the warp that
draws them at the receiver (pure numpy).

The networks move the head well but barely move the lips and lids (`weights/MODEL_CARD.md`), so the
sender also measures the face with MediaPipe landmarks (`facecodec.landmarks`, 478 points) and sends
P coefficients of an expression basis (`ExpressionBasis`, PCA of landmark motion on the training
faces). The receiver turns them into a 2-D backward warp of the SOURCE image (`ExpressionWarp`): a
thin-plate spline through the moving landmarks of the source, displaced by the decoded expression,
pinned at rigid landmarks. The generator composes that warp with the network's flow
(`models.generator.compose_expression`), so head pose and free view stay the networks' job and the
expression is drawn in the source's own frame.

Frames and units:
- image: pixels (x right, y down) of the S×S frame; MediaPipe's z (relative depth) in the same units.
- canonical: the basis's mean face, centred, inter-ocular distance (33–263) 1; every frame is brought
  there by a 3-D similarity fitted on `RIGID` landmarks (`align`), which removes head pose and size.
- code (P,): projection of a face's canonical `MOVING` landmarks, minus the mean face's, on the
  basis (orthonormal). Frames send their code; the keyframe sends the source's; the receiver draws
  their difference (`ExpressionWarp.flow`), so a refreshed source needs nothing re-sent.
- flow (3, E, E), E = S/2: for each point p of an E×E grid over the image ([-1, 1],
  align_corners=True), channels 0–1 the displacement (x, y) in the same normalised units such that
  the output at p shows the source at p + flow(p); channel 2 the mouth cavity's opacity at p, in
  [0, 1]: where the lips part further than in the source, the warp can only stretch the lips'
  contact line over the gap, so the generator paints the inside of the mouth dark there
  (`models.generator.paint_cavity`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

# MediaPipe face-mesh indices (`mediapipe.solutions.face_mesh_connections`, written out so the
# receiver needs no mediapipe). "Left"/"right" are the subject's.
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_BROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
RIGHT_BROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
JAW = (288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 18, 200, 199, 175)
# The inner lip contour in order around the mouth: the cavity's outline.
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
# The iris points are left out: MediaPipe places them at random under a closing lid, and moving
# them folded the eye (seen on lp_d10's blink).
MOVING = tuple(sorted({*LIPS, *LEFT_EYE, *RIGHT_EYE, *LEFT_BROW, *RIGHT_BROW, *JAW}))
# Pinned at zero displacement so the warp stays local: upper face outline and nose.
ANCHORS = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 93, 234, 127, 162, 21, 54, 103, 67, 109,
           1, 4, 5, 6, 98, 168, 195, 197, 327)
# Fitted by the similarity that removes head pose: the face outline above the mouth, nose, eye corners.
RIGID = tuple(sorted({*ANCHORS, 33, 133, 362, 263}))
SOURCE_POINTS = MOVING + ANCHORS  # what the keyframe carries, in this order
_EDGE = np.linspace(-1.0, 1.0, 5)
BORDER = np.array([(x, y) for x in _EDGE for y in (-1.0, 1.0)] + [(x, y) for y in _EDGE[1:-1] for x in (-1.0, 1.0)])

BASIS_FILE = "expression_basis.npz"
NUM_COEFFICIENTS = 16  # P of the shipped basis: 95 % of the training faces' landmark motion
FLOW_CHANNELS = 3  # x, y displacement; mouth cavity
FLOW_CELL = 2  # pixels per cell of the flow's E×E grid (128² at 256²: the mouth's gap is a few cells)


def flow_size(image_size: int) -> int:
    """E, the side of the expression flow of S×S frames."""
    return image_size // FLOW_CELL
NUM_LANDMARKS = 478  # MediaPipe face mesh with the refined iris points


def align(landmarks: np.ndarray, reference: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """3-D similarity (scale s, rotation R (3, 3), translation t (3,)) with s·R·x + t ≈ reference,
    least squares over the `RIGID` landmarks (Umeyama 1991). landmarks (478, 3); reference (len(RIGID), 3)."""
    src = np.asarray(landmarks, np.float64)[list(RIGID)]
    dst = np.asarray(reference, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(b.T @ a / len(src))
    sign = np.ones(3)
    sign[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((sv * sign).sum() / (a**2).sum(1).mean())
    return scale, rotation, mu_d - scale * rotation @ mu_s


@dataclass(frozen=True)
class SourceFace:
    """What the receiver needs of the source picture's face; sent with its keyframe.

    points: (len(SOURCE_POINTS), 2) float32 pixels of the `MOVING` then `ANCHORS` landmarks.
    to_image: (2, 3) float32, maps a canonical displacement (3,) to a pixel displacement (x, y) in
        the source image (the first two rows of R⁻¹/s of `align`).
    code: (P,) float32, the source's own expression code (`ExpressionBasis.code`).
    """

    points: np.ndarray
    to_image: np.ndarray
    code: np.ndarray

    def __post_init__(self) -> None:
        points = np.asarray(self.points, np.float32)
        to_image = np.asarray(self.to_image, np.float32)
        code = np.asarray(self.code, np.float32)
        if points.shape != (len(SOURCE_POINTS), 2) or to_image.shape != (2, 3) or code.ndim != 1:
            raise ValueError(f"SourceFace needs points ({len(SOURCE_POINTS)}, 2), to_image (2, 3) and code (P,), "
                             f"got {points.shape}, {to_image.shape} and {code.shape}")
        if not (np.isfinite(points).all() and np.isfinite(to_image).all() and np.isfinite(code).all()):
            raise ValueError("SourceFace values must be finite")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "to_image", to_image)
        object.__setattr__(self, "code", code)


@dataclass(frozen=True)
class ExpressionBasis:
    """An orthonormal basis of canonical landmark motion (`scripts/expression_basis.py` fits it).

    mean_rigid: (len(RIGID), 3) canonical positions of the `RIGID` landmarks (the alignment target).
    mean_moving: (len(MOVING), 3) canonical positions of the `MOVING` landmarks, averaged over faces.
    components: (P, len(MOVING) · 3) orthonormal rows, displacement laid out point-major (x, y, z).
    spread: (P,) standard deviation of each coefficient on the training pairs (quantiser scale).
    """

    mean_rigid: np.ndarray
    mean_moving: np.ndarray
    components: np.ndarray
    spread: np.ndarray

    @property
    def size(self) -> int:
        """P, the number of coefficients per frame."""
        return len(self.components)

    @cached_property
    def id(self) -> int:
        """32-bit fingerprint of the basis; streams name the basis their coefficients refer to."""
        digest = hashlib.sha256(np.ascontiguousarray(self.components, np.float32).tobytes()).digest()
        return int.from_bytes(digest[:4], "big")

    def truncated(self, size: int) -> "ExpressionBasis":
        """The first `size` components (they are sorted by variance)."""
        if not 1 <= size <= self.size:
            raise ValueError(f"basis size must be in 1…{self.size}, got {size}")
        return ExpressionBasis(self.mean_rigid, self.mean_moving, self.components[:size], self.spread[:size])

    def save(self, path: str | Path) -> None:
        arrays = {name: getattr(self, name).astype(np.float32)
                  for name in ("mean_rigid", "mean_moving", "components", "spread")}
        np.savez(path, **arrays, moving=np.array(MOVING), rigid=np.array(RIGID))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ExpressionBasis":
        """The shipped basis (package data), or one saved by `save`."""
        if path is None:
            with resources.files("facecodec").joinpath("data", BASIS_FILE).open("rb") as f:
                data = dict(np.load(f))
        else:
            data = dict(np.load(path))
        if tuple(data["moving"]) != MOVING or tuple(data["rigid"]) != RIGID:
            raise ValueError(f"{path or BASIS_FILE}: the basis was fitted on other landmark sets")
        if path is None and len(data["components"]) != NUM_COEFFICIENTS:
            raise ValueError(f"the shipped basis has {len(data['components'])} coefficients, not {NUM_COEFFICIENTS}")
        return cls(*(data[name].astype(np.float64) for name in ("mean_rigid", "mean_moving", "components", "spread")))

    def canonical(self, landmarks: np.ndarray) -> tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray]]:
        """landmarks (478, 3) pixels → (canonical `MOVING` points (len(MOVING), 3), the similarity)."""
        scale, rotation, shift = align(landmarks, self.mean_rigid)
        moving = np.asarray(landmarks, np.float64)[list(MOVING)]
        return scale * moving @ rotation.T + shift, (scale, rotation, shift)

    def code(self, landmarks: np.ndarray) -> np.ndarray:
        """A face's expression code (P,) float64 from its landmarks (478, 3) pixels."""
        face, _ = self.canonical(landmarks)
        return self.components @ (face - self.mean_moving).reshape(-1)

    def encode(self, landmarks: np.ndarray, source: np.ndarray) -> np.ndarray:
        """Coefficients (P,) float64 of a frame's expression relative to the source's; both (478, 3)."""
        return self.code(landmarks) - self.code(source)

    def source_face(self, source: np.ndarray) -> SourceFace:
        """The receiver's view of a source picture from its landmarks (478, 3) pixels."""
        moving, (scale, rotation, _) = self.canonical(source)
        points = np.asarray(source, np.float64)[list(SOURCE_POINTS), :2]
        code = self.components @ (moving - self.mean_moving).reshape(-1)
        return SourceFace(points, (rotation.T / scale)[:2], code)


def _square_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 2), (M, 2) → (N, M) squared distances, ≥ 0, in the inputs' dtype."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return np.maximum(d2, 0, out=d2)


_BLAS = None


def _one_blas_thread():
    """BLAS on one thread for the small solves and products of a frame's flow: a multi-threaded
    OpenBLAS spins against the networks' threads (measured on the 2-core machine under load: a
    158² solve 46 ms on the default threads, 0.2 ms on one)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def _linear_resize_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) linear interpolation from n to m samples of [-1, 1] (align_corners=True)."""
    pos = np.linspace(0.0, n - 1.0, m)
    low = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - low
    out = np.zeros((m, n))
    out[np.arange(m), low], out[np.arange(m), low + 1] = 1.0 - frac, frac
    return out


def _tps_kernel(d2: np.ndarray) -> np.ndarray:
    """Thin-plate kernel of squared distances, r² log r² (0 at r = 0), in place of `d2`."""
    log = np.log(np.maximum(d2, 1e-20))
    d2 *= log
    return d2


class ExpressionWarp:
    """Receiver side: the source's face → for each frame's coefficients, the flow (3, E, E).

    A thin-plate spline maps where each `MOVING` landmark of the source goes under the decoded
    expression back to where it is in the source; `ANCHORS` and the image border stay put.
    `regularisation` (in the kernel's units) lets nearly coincident points (lips meeting, lids
    closing) pull apart smoothly instead of folding the image. The spline is evaluated on an
    (E/2)² grid (its cost) and upsampled; the cavity is drawn at E².
    """

    def __init__(self, basis: ExpressionBasis, face: SourceFace, size: int, *, image_size: int,
                 regularisation: float = 1e-3):
        self.basis, self.face, self.size = basis, face, size
        self.regularisation = regularisation
        self.image_size = image_size
        self._to_norm = 2.0 / (image_size - 1)
        self._upsample = _linear_resize_matrix(size // 2, size)  # (E, E/2)
        self._inner = [MOVING.index(i) for i in INNER_LIPS]
        points = face.points.astype(np.float64) * self._to_norm - 1.0
        self._moving, self._fixed = points[: len(MOVING)], np.concatenate([points[len(MOVING):], BORDER])
        # (P, len(MOVING), 2) normalised displacement of the moving points per unit of each coefficient
        per_point = basis.components.reshape(basis.size, len(MOVING), 3)
        self._unit = per_point @ face.to_image.astype(np.float64).T * self._to_norm
        axis = np.linspace(-1.0, 1.0, size // 2)
        gy, gx = np.meshgrid(axis, axis, indexing="ij")
        self._grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)  # (E², 2) x, y
        # what does not move is computed once per source: the fixed points' kernel, among
        # themselves (float64, for the solve) and at the grid (float32: the per-frame cost)
        self._fixed_system = _tps_kernel(_square_distances(self._fixed, self._fixed))
        self._fixed_at_grid = _tps_kernel(_square_distances(self._grid, self._fixed.astype(np.float32)))

    def displacement(self, coefficients: np.ndarray) -> np.ndarray:
        """(P,) coefficients relative to the source (a frame's code minus `SourceFace.code`) →
        (len(MOVING), 2) normalised displacement of the moving landmarks."""
        coefficients = np.asarray(coefficients, np.float64).reshape(-1)
        if coefficients.shape != (self.basis.size,) or not np.isfinite(coefficients).all():
            raise ValueError(f"expected {self.basis.size} finite expression coefficients, got {coefficients.shape}")
        return np.tensordot(coefficients, self._unit, axes=1)

    def flow_of(self, codes: np.ndarray) -> np.ndarray:
        """Frames' codes (B, P), as the stream carries them → (B, 3, E, E) float32 flows."""
        codes = np.asarray(codes, np.float64).reshape(-1, self.basis.size)
        return np.stack([self.flow(c - self.face.code) for c in codes])

    def flow(self, coefficients: np.ndarray) -> np.ndarray:
        """(P,) coefficients relative to the source → (3, E, E) float32: backward displacement and
        mouth cavity (module docstring)."""
        with _one_blas_thread():
            return self._flow(coefficients)

    def _flow(self, coefficients: np.ndarray) -> np.ndarray:
        moved = self.displacement(coefficients)
        centres = np.concatenate([self._moving + moved, self._fixed])
        m, n = len(moved), len(centres)
        system = np.zeros((n + 3, n + 3))
        system[:m, :n] = _tps_kernel(_square_distances(centres[:m], centres))
        system[m:n, :m] = system[:m, m:n].T
        system[m:n, m:n] = self._fixed_system
        system[:n, :n] += self.regularisation * np.eye(n)
        system[:n, n], system[:n, n + 1:] = 1.0, centres
        system[n, :n], system[n + 1:, :n] = 1.0, centres.T
        rhs = np.zeros((n + 3, 2))
        rhs[:m] = -moved  # the fixed points' displacement is 0
        weights = np.linalg.solve(system, rhs).astype(np.float32)
        grid = self._grid
        field = _tps_kernel(_square_distances(grid, centres[:m].astype(np.float32))) @ weights[:m]
        field += self._fixed_at_grid @ weights[m:n]
        field += weights[n] + grid @ weights[n + 1:]
        half = self.size // 2
        coarse = field.T.reshape(2, half, half)
        fine = self._upsample @ coarse @ self._upsample.T  # (2, E, E)
        cavity = self._cavity(fine, self._moving[self._inner] + moved[self._inner])
        return np.concatenate([fine, cavity[None]]).astype(np.float32)

    def _cavity(self, flow: np.ndarray, lips: np.ndarray) -> np.ndarray:
        """Opacity (E, E) of the mouth's inside: within the inner lips where they moved, as far as the
        warp there stretches the source: 1 − its area ratio, doubled (a stretch to twice the source's
        area reads mostly the lips' contact line: dark; the source's own open gap, ratio 1: clear).
        flow (2, E, E); lips (len(INNER_LIPS), 2) normalised, where the expression puts them."""
        from PIL import Image, ImageDraw

        e, scale = self.size, 4  # drawn at 4× and box-filtered: anti-aliased edges
        outline = [tuple(p) for p in (lips + 1.0) * (e - 1) / 2 * scale + scale / 2]
        mask = Image.new("L", (e * scale, e * scale), 0)
        ImageDraw.Draw(mask).polygon(outline, fill=255)
        inside = np.asarray(mask.reduce(scale), np.float32) / 255.0
        if not inside.any():
            return inside
        step = 2.0 / (e - 1)
        dx_dx, dx_dy = np.gradient(flow[0], step, axis=(1, 0))
        dy_dx, dy_dy = np.gradient(flow[1], step, axis=(1, 0))
        area = (1 + dx_dx) * (1 + dy_dy) - dx_dy * dy_dx  # of the source read per unit of output
        return inside * np.clip(2.0 * (1.0 - area), 0.0, 1.0)



class ExpressionSender:
    """Sender side: frames → coefficients relative to the current source picture.

    Measures every frame with MediaPipe (`facecodec.landmarks.FaceLandmarker`, ≈ 10 ms a 256² frame
    on one core) and sends its code (`ExpressionBasis.code`). A frame where no face is found repeats
    the last code, so the receiver holds the expression instead of snapping back to the source's;
    a source without a face gives no `SourceFace` (the receiver then ignores the codes).
    """

    def __init__(self, basis: ExpressionBasis | None = None, landmarker=None):
        from .landmarks import FaceLandmarker

        self.basis = basis or ExpressionBasis.load()
        self._landmarker = landmarker or FaceLandmarker()
        self._owns_landmarker = landmarker is None
        self._last = np.zeros(self.basis.size)

    def source_face(self, image: np.ndarray) -> SourceFace | None:
        """A source picture (H, W, 3) uint8 (the picture the receiver will decode) → its face, or None."""
        points = self._landmarker.detect(np.asarray(image)[None], depth=True)[0].astype(np.float64)
        return self.basis.source_face(points) if np.isfinite(points).all() else None

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Frames (T, H, W, 3) uint8 → their codes (T, P) float32."""
        points = self._landmarker.detect(np.asarray(frames), depth=True).astype(np.float64)
        out = np.empty((len(points), self.basis.size), np.float32)
        for i, frame in enumerate(points):
            if np.isfinite(frame).all():
                self._last = self.basis.code(frame)
            out[i] = self._last
        return out

    def close(self) -> None:
        if self._owns_landmarker:
            self._landmarker.close()

    def __enter__(self) -> "ExpressionSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def zero_flow(batch: int, size: int) -> np.ndarray:
    """(B, 3, E, E) zeros for E = `size`: no expression change (streams without the channel)."""
    return np.zeros((batch, FLOW_CHANNELS, size, size), np.float32)



def add_expression_argument(parser) -> None:
    """`--no-expression` on a command that encodes."""
    parser.add_argument("--no-expression", dest="expression", action="store_false",
                        help="leave the expression channel out (mouth, eyes, brows: facecodec.expression; on by "
                        "default, ≈ 1 kbit/s, needs mediapipe at the sender): a version-1 stream")


def expression_sender(enabled: bool) -> ExpressionSender | None:
    """The sender of the expression channel, or None when `enabled` is False; a missing mediapipe
    is an error that says how to go without."""
    if not enabled:
        return None
    try:
        return ExpressionSender()
    except ImportError as err:
        raise ImportError(f"{err}; or send without the expression channel (--no-expression)") from None
