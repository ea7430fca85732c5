"""Per-frame quality metrics between an original and a decoded clip, both (T, H, W, 3) uint8 RGB.

Every function returns one value per frame, (T,) float64, so a clip's curve can be plotted and its
mean taken by the caller. Landmark- and identity-based metrics are NaN on frames where a face was
not found in either image; means skip those frames and say how many were used.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import quality


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected two (T, H, W, 3) clips of one shape, got {a.shape} and {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB over all pixels and channels of each frame (peak 255); inf for identical frames."""
    _check_pair(a, b)
    return quality.psnr(a, b)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray, *, window: int = 11, sigma: float = 1.5, batch: int = 8) -> np.ndarray:
    """SSIM (Wang et al. 2004): Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, range 255; computed per
    RGB channel over the 'valid' window positions, averaged over channels and positions."""
    _check_pair(a, b)
    g = _gaussian_window(window, sigma).float()
    kernel_h, kernel_v = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = np.empty(len(a))
    for i in range(0, len(a), batch):  # batches keep memory flat for long clips
        x = torch.from_numpy(np.array(a[i : i + batch], np.float32)).permute(0, 3, 1, 2)  # (B, 3, H, W)
        y = torch.from_numpy(np.array(b[i : i + batch], np.float32)).permute(0, 3, 1, 2)
        n, _, h, w = x.shape
        # the five local moments in one pass: every (frame, channel, moment) plane filtered alike
        planes = torch.stack([x, y, x * x, y * y, x * y], dim=2).reshape(1, -1, h, w)
        c = planes.shape[1]  # depthwise (grouped) filtering: much faster on CPU than a batch of 1-channel maps
        local = F.conv2d(F.conv2d(planes, kernel_h.repeat(c, 1, 1, 1), groups=c), kernel_v.repeat(c, 1, 1, 1), groups=c)
        mx, my, xx, yy, xy = local.reshape(n, 3, 5, *local.shape[2:]).unbind(2)
        sxx, syy, sxy = xx - mx * mx, yy - my * my, xy - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out[i : i + n] = ssim_map.mean(dim=(1, 2, 3)).double().numpy()
    return out


class Lpips:
    """Shift-tolerant LPIPS (stLPIPS) with the AlexNet and/or VGG weights shipped in `stlpips-pytorch`.

    The networks are re-declared in `facecodec.perceptual.StLpips` (the wheel's own modules
    need torchvision); its outputs equal the wheel's reference code (checked in the tests).
    """

    def __init__(self, nets: tuple[str, ...] = ("alex", "vgg"), batch: int = 8):
        from ..perceptual import StLpips

        self.batch = batch
        self.models = {net: StLpips(net) for net in nets}

    @property
    def names(self) -> list[str]:
        return [f"lpips_{net}" for net in self.models]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
        """{'lpips_alex': (T,), 'lpips_vgg': (T,)}; 0 for identical frames, lower is closer."""
        _check_pair(a, b)
        return self.against(a, {"b": b})["b"]

    def against(self, reference: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """Distances of several clips to one reference clip (T, H, W, 3): {other: {metric: (T,)}}.

        The reference's features are computed once for all others, and a one-frame other (a frozen
        frame) is embedded once and compared with every reference frame.
        """
        for frames in others.values():
            if frames.shape[1:] != reference.shape[1:] or len(frames) not in (1, len(reference)):
                raise ValueError(f"cannot compare {frames.shape} with reference {reference.shape}")
        out = {k: {name: np.empty(len(reference)) for name in self.names} for k in others}
        with torch.inference_mode():
            frozen = {(k, net): model.features(_tensor(v)) for k, v in others.items() if len(v) == 1
                      for net, model in self.models.items()}
            for i in range(0, len(reference), self.batch):
                x = _tensor(reference[i : i + self.batch])
                for (net, model), name in zip(self.models.items(), self.names):
                    fx = model.features(x)
                    for k, frames in others.items():
                        fy = frozen.get((k, net))
                        if fy is None:
                            fy = model.features(_tensor(frames[i : i + self.batch]))
                        distance = sum(lin((a - b).pow(2)).mean(dim=(1, 2, 3)) for lin, a, b in zip(model.lins, fx, fy))
                        out[k][name][i : i + len(x)] = distance.double().numpy()
        return out


def _tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float in [0, 1]; copies, as decoded video arrays are read-only
    (which torch.from_numpy warns about)."""
    from ..media import to_tensor_batch

    return to_tensor_batch(np.array(frames))


def keypoint_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> np.ndarray:
    """AKD: mean Euclidean distance (pixels) between corresponding landmarks, (T, N, 2) each → (T,)."""
    return np.linalg.norm(landmarks_a.astype(np.float64) - landmarks_b, axis=-1).mean(axis=-1)


def pose_error(pose_a: np.ndarray, pose_b: np.ndarray) -> np.ndarray:
    """Mean absolute difference of (yaw, pitch, roll) in degrees, (T, 3) each → (T,)."""
    return np.abs(pose_a.astype(np.float64) - pose_b).mean(axis=-1)


def identity_distance(embedding_a: np.ndarray, embedding_b: np.ndarray) -> np.ndarray:
    """AED: Euclidean distance between identity embeddings, (T, D) each (or (1, D) broadcast) → (T,)."""
    return np.linalg.norm(embedding_a.astype(np.float64) - embedding_b, axis=-1)


def jitter(landmarks: np.ndarray) -> float:
    """Temporal jitter: mean length of the landmarks' second difference over time, px per frame²,
    (T, N, 2) → float. What a viewer sees as shaking: steady motion scores 0, a 1-px back-and-forth 2. Frame
    triplets with a missing face (NaN) are skipped; NaN when none is left."""
    points = np.asarray(landmarks, np.float64)
    if len(points) < 3:
        return float("nan")
    return nanmean(np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1))


def face_scale(landmarks: np.ndarray) -> np.ndarray:
    """RMS distance of the landmarks to their centroid, (T, N, 2) px → (T,) px (NaN: no face)."""
    points = np.asarray(landmarks, np.float64)
    return np.sqrt(((points - points.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean(-1))


def breathing(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """Scale "breathing": how much the face's size wanders against the reference's, % — the standard
    deviation over frames of 100·ln(scale / reference scale), (T, N, 2) each (or (1, N, 2) broadcast).
    A constant size offset scores 0; a head that grows and shrinks while the real one does not scores
    its swing. Frames without both faces are skipped; NaN when fewer than two are left."""
    ratio = 100 * np.log(face_scale(landmarks) / face_scale(reference))
    ratio = ratio[np.isfinite(ratio)]
    return float(ratio.std()) if ratio.size >= 2 else float("nan")


# MediaPipe face-mesh indices of the expression measure ("left"/"right": the subject's)
INNER_LIPS = (13, 14)
EYE_CORNERS = (33, 263)  # outer corners: the inter-ocular distance
LIDS = ((159, 145, 33, 133), (386, 374, 362, 263))  # upper lid, lower lid, eye corners; per eye


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the inter-ocular distance, (T, 478, 2) px → (T,) (NaN: no face)."""
    points = np.asarray(landmarks, np.float64)
    gap = np.linalg.norm(points[:, INNER_LIPS[0]] - points[:, INNER_LIPS[1]], axis=-1)
    return gap / np.linalg.norm(points[:, EYE_CORNERS[0]] - points[:, EYE_CORNERS[1]], axis=-1)


def eye_opening(landmarks: np.ndarray) -> np.ndarray:
    """Mean over both eyes of lid gap over eye width, (T, 478, 2) px → (T,) (NaN: no face)."""
    points = np.asarray(landmarks, np.float64)
    dist = lambda a, b: np.linalg.norm(points[:, a] - points[:, b], axis=-1)  # noqa: E731
    return np.mean([dist(up, down) / dist(c0, c1) for up, down, c0, c1 in LIDS], axis=0)


def follows(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    """How a decoded signal (T,) follows the original's (T,) (a mouth or eye opening over a clip):
    (Pearson correlation, amplitude ratio std(decoded) / std(original)), over frames where both are
    finite. A decoded signal that does not move (repeating the source) scores (0, 0); NaN when
    fewer than 3 frames are left or the original itself does not move."""
    a, b = np.asarray(original, np.float64), np.asarray(decoded, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"expected two signals (T,) of one length, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if a.size < 3 or a.std() == 0:
        return float("nan"), float("nan")
    if b.std() == 0:
        return 0.0, 0.0
    return float(np.corrcoef(a, b)[0, 1]), float(b.std() / a.std())


def nanmean(values: np.ndarray) -> float:
    """Mean over finite entries; NaN when there are none (no warning). inf only if all are inf."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if finite.size:
        return float(finite.mean())
    return float("inf") if values.size and np.isinf(values).all() else float("nan")
