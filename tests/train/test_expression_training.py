"""The expression channel in training: flows per pair from cached landmarks, mirrored with the
augmentation, and the mouth/eye crop loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.expression import ExpressionBasis, ExpressionWarp
from facecodec.train.data import normalise_landmarks
from facecodec.train.expression import batch_expression_flows, mirror_flow, to_pixels
from facecodec.train.losses import expression_region_loss
from facecodec.perceptual import PerceptualLoss

S, E = 256, 128


@pytest.fixture(scope="module")
def faces(sample_frames) -> np.ndarray:
    """(2, 478, 3) pixel landmarks of two sample frames, the mouth open in the second."""
    from facecodec.eval.metrics import mouth_opening
    from facecodec.landmarks import FaceLandmarker

    try:
        with FaceLandmarker() as landmarker:
            points = landmarker.detect(sample_frames[::4], depth=True).astype(np.float64)
    except ImportError as err:
        pytest.skip(str(err))
    opening = mouth_opening(points[..., :2])
    return points[[int(np.argmin(opening)), int(np.argmax(opening))]]


def test_to_pixels_inverts_the_normalisation(faces):
    for flipped in (False, True):
        np.testing.assert_allclose(to_pixels(normalise_landmarks(faces, S, flipped), S, flipped), faces, atol=0.02)


def test_flows_are_the_receivers_and_mirror_with_the_frames(faces):
    basis = ExpressionBasis.load()
    pair = np.stack([faces[0], faces[1], faces[0]])  # source, two drivings: opened, same
    plain = torch.from_numpy(normalise_landmarks(pair, S, False))[None]
    flows = batch_expression_flows(plain, np.array([False]), basis, E, S)
    assert flows.shape == (2, 3, E, E)
    warp = ExpressionWarp(basis, basis.source_face(pair[0]), E, image_size=S)
    step = 0.01
    expected = warp.flow(np.rint(basis.encode(pair[1], pair[0]) / step) * step)
    np.testing.assert_allclose(flows[0].numpy(), expected, atol=2e-3)
    assert np.abs(flows[0].numpy()).max() > 0.01 and np.abs(flows[1].numpy()).max() < 1e-6  # no change: no flow
    mirrored = torch.from_numpy(normalise_landmarks(pair, S, True))[None]
    np.testing.assert_allclose(batch_expression_flows(mirrored, np.array([True]), basis, E, S)[0].numpy(),
                               mirror_flow(expected), atol=2e-3)
    np.testing.assert_array_equal(mirror_flow(mirror_flow(expected)), expected)
    missing = plain.clone()
    missing[0, 1] = float("nan")
    assert batch_expression_flows(missing, np.array([False]), basis, E, S)[0].abs().max() == 0


def test_region_loss_is_zero_on_the_target_and_sees_the_mouth(sample_frames, faces):
    perceptual = PerceptualLoss((1.0,))
    target = torch.from_numpy(sample_frames[:1].copy()).permute(0, 3, 1, 2).float() / 255
    landmarks = torch.from_numpy(normalise_landmarks(faces[:1], S, False))
    assert expression_region_loss(perceptual, target, target, landmarks) == 0
    mouth = target.clone()
    centre = faces[0, 13, :2].astype(int)
    mouth[..., centre[1] - 4:centre[1] + 4, centre[0] - 10:centre[0] + 10] = 0  # a dark gap drawn in the lips
    far = target.clone()
    far[..., 230:238, 10:30] = 0  # the same patch far from the face
    assert expression_region_loss(perceptual, mouth, target, landmarks) > 0.01
    assert expression_region_loss(perceptual, far, target, landmarks) == 0
