"""The dense-flow target (DIS optical flow on the driving face) and its loss."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facecodec.train.dense_flow import dense_flow_loss, dense_flow_targets, face_mask

SIZE = 128


def _texture(seed: int = 0) -> np.ndarray:
    """(S, S, 3) uint8: smooth random texture DIS can track."""
    noise = np.random.default_rng(seed).uniform(0, 255, (SIZE, SIZE)).astype(np.float32)
    grey = cv2.GaussianBlur(noise, (0, 0), 2.0)
    grey = (grey - grey.min()) / (grey.max() - grey.min()) * 255
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def _square(half: float) -> np.ndarray:
    """Four 'landmarks' at the corners of a centred square, normalised."""
    return np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float32)


def test_face_mask_fills_the_landmark_hull_and_is_empty_without_a_face():
    mask = face_mask(_square(0.5), SIZE)
    assert mask[SIZE // 2, SIZE // 2] == 1 and mask[2, 2] == 0
    assert abs(mask.mean() - 0.25) < 0.03  # a square of half-side ½ covers a quarter of the frame
    assert face_mask(np.full((4, 2), np.nan, np.float32), SIZE).sum() == 0


def test_targets_point_each_driving_pixel_back_to_the_source_pixel_it_shows():
    # two sources, two drivings each, every driving its source moved by its own (dx, dy) px: driving pixel
    # (x, y) shows source pixel (x − dx, y − dy); distinct shifts catch pairs measured or returned out of order
    shifts = [[(3, 0), (-2, 1)], [(0, 2), (1, -3)]]
    sources = [_texture(seed) for seed in (0, 1)]
    drivings = torch.stack([torch.stack([_tensor(np.roll(src, (dy, dx), axis=(0, 1))) for dx, dy in row])
                            for src, row in zip(sources, shifts)])  # (B=2, N=2, 3, S, S)
    face, no_face = _square(0.5), np.full((4, 2), np.nan, np.float32)
    landmarks = torch.from_numpy(np.stack([[face, face, face], [face, face, no_face]]))  # source first
    target, weight = dense_flow_targets(torch.stack([_tensor(x) for x in sources]), drivings, landmarks)
    assert target.shape == (4, 2, SIZE, SIZE) and weight.shape == (4, 1, SIZE, SIZE)
    assert weight[3].sum() == 0  # the last driving frame has no face: it contributes nothing
    lin = torch.linspace(-1, 1, SIZE)
    step = 2 / (SIZE - 1)  # one pixel in the flow's units
    for k, (dx, dy) in enumerate([shifts[0][0], shifts[0][1], shifts[1][0]]):
        inside = weight[k, 0] > 0
        got_x = (target[k, 0] - lin[None, :])[inside].median().item() / step
        got_y = (target[k, 1] - lin[:, None])[inside].median().item() / step
        assert abs(got_x + dx) < 0.25 and abs(got_y + dy) < 0.25, (k, got_x, got_y)


def _shifted(batch: int, shift: tuple[float, float], size: int, depth: int = 2) -> torch.Tensor:
    """(batch, D, size, size, 3) deformation reading the source at (x, y) + shift, and its (batch, 2, size,
    size) flow image."""
    lin = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    grid = torch.stack([x + shift[0], y + shift[1], torch.zeros_like(x)], dim=-1)
    return grid.expand(batch, depth, -1, -1, -1).clone()


def test_loss_is_zero_on_the_target_and_counts_only_the_face():
    target = _shifted(1, (0.1, -0.05), 64)[:, 0, ..., :2].permute(0, 3, 1, 2)  # (1, 2, 64, 64)
    face = torch.zeros(1, 1, 64, 64)
    face[..., 16:48, 16:48] = 1
    # the deformation at 16² is brought to 64² as the source skip does (bilinear, align_corners=True): exact
    assert dense_flow_loss(_shifted(1, (0.1, -0.05), 16), target, face).item() < 1e-5
    missed = dense_flow_loss(_shifted(1, (0.0, 0.0), 16), target, face).item()
    assert abs(missed - 0.15) < 1e-4  # |0.1| + |−0.05| on every face pixel
    wrong_outside = target.clone()
    wrong_outside[..., :8, :] += 1  # an error off the face is not counted
    assert dense_flow_loss(_shifted(1, (0.1, -0.05), 16), wrong_outside, face).item() < 1e-5
    assert dense_flow_loss(_shifted(1, (0.0, 0.0), 16), target, torch.zeros_like(face)).item() == 0
