"""The expression channel's geometry (`facecodec.expression`) and its composition with the flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.expression import (LIPS, MOVING, SOURCE_POINTS, ExpressionBasis, ExpressionWarp, SourceFace, align,
                                  zero_flow)
from facecodec.models.generator import compose_expression, warp_image

S, E = 256, 128


@pytest.fixture(scope="module")
def basis() -> ExpressionBasis:
    return ExpressionBasis.load()


@pytest.fixture(scope="module")
def face(sample_frames) -> np.ndarray:
    from facecodec.landmarks import FaceLandmarker

    try:
        with FaceLandmarker() as landmarker:
            return landmarker.detect(sample_frames[:1], depth=True)[0].astype(np.float64)
    except ImportError as err:
        pytest.skip(str(err))


def _rotation(yaw_deg: float) -> np.ndarray:
    a = np.radians(yaw_deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def test_shipped_basis_is_orthonormal_and_named(basis):
    assert basis.size == 16 and basis.components.shape == (16, 3 * len(MOVING))
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(16), atol=1e-5)
    assert basis.id == ExpressionBasis.load().id and basis.truncated(8).id != basis.id
    assert (np.diff(basis.spread) <= 1e-6).all()  # sorted by variance


def test_align_recovers_a_similarity(face, basis):
    moved = 1.7 * face @ _rotation(20).T + np.array([5.0, -3.0, 2.0])
    s, r, t = align(moved, face[list(basis_rigid())])
    np.testing.assert_allclose(s * moved @ r.T + t, face, atol=1e-6)


def basis_rigid():
    from facecodec.expression import RIGID

    return RIGID


def test_pose_and_size_alone_give_no_expression(face, basis):
    assert np.abs(basis.encode(face, face)).max() < 1e-9
    turned = 0.8 * face @ _rotation(15).T + np.array([10.0, 4.0, 0.0])
    assert np.abs(basis.encode(turned, face)).max() < 1e-6


def test_an_opened_mouth_is_coded_and_drawn_back(face, basis):
    opened = face.copy()
    lower = [i for i in LIPS if face[i, 1] > face[14, 1] - 0.5]  # the lower lip, 14 and below
    opened[lower, 1] += 8.0  # the lower lip 8 px down
    coefficients = basis.encode(opened, face)
    assert np.abs(coefficients).max() > 0.05
    warp = ExpressionWarp(basis, basis.source_face(face), E, image_size=S)
    moved = warp.displacement(coefficients) * (S - 1) / 2  # pixels
    lip = MOVING.index(14)
    assert 5.0 < moved[lip, 1] < 11.0 and abs(moved[lip, 0]) < 2.0  # 16 coefficients keep most of it
    assert abs(moved[MOVING.index(159), 1]) < 1.0  # the eyes stay
    # the backward flow: at the opened lip's place the output reads the source's lip
    flow = warp.flow(coefficients)
    assert flow.shape == (3, E, E) and flow.dtype == np.float32
    at = (face[14, :2] + moved[lip]) * 2 / (S - 1) - 1
    grid = torch.from_numpy(at[None, None, None].astype(np.float32))
    read = torch.nn.functional.grid_sample(torch.from_numpy(flow)[None], grid, align_corners=True)[0, :, 0, 0]
    np.testing.assert_allclose(read[:2].numpy() * (S - 1) / 2, -moved[lip], atol=1.0)
    # far from the face nothing moves
    assert np.abs(flow[:2, :8, :]).max() < 0.01 and np.abs(flow[:2, :, :8]).max() < 0.01
    # the lips parted over a closed mouth: the gap between them is painted as the mouth's inside
    cavity = flow[2]
    gap = ((face[13, :2] + face[14, :2]) / 2 + moved[lip] / 2) * (E - 1) / (S - 1)  # between the moved lips
    row, col = np.unravel_index(np.argmax(cavity), cavity.shape)
    corners = face[[61, 291], 0] * (E - 1) / (S - 1)
    assert cavity.max() > 0.9 and abs(row - gap[1]) < 2 and corners[0] < col < corners[1], (row, col, gap)
    assert 0 <= cavity.min()
    assert cavity[:, : E // 4].max() == 0 and cavity[: E // 3].max() == 0  # nowhere else
    assert warp.flow(np.zeros(basis.size))[2].max() == 0  # the source's own mouth: nothing painted


def test_zero_coefficients_give_the_identity(face, basis):
    warp = ExpressionWarp(basis, basis.source_face(face), E, image_size=S)
    assert np.abs(warp.flow(np.zeros(basis.size))).max() < 1e-9
    source = basis.source_face(face)
    np.testing.assert_allclose(source.code, basis.code(face), atol=1e-6)
    same = warp.flow_of(np.repeat(source.code[None], 3, axis=0))  # frames whose code is the source's
    assert same.shape == (3, 3, E, E) and np.abs(same).max() < 1e-5
    with pytest.raises(ValueError, match="16 finite"):
        warp.flow(np.full(basis.size, np.nan))


def test_source_face_checks_its_shapes():
    with pytest.raises(ValueError, match="points"):
        SourceFace(np.zeros((3, 2)), np.zeros((2, 3)), np.zeros(16))
    with pytest.raises(ValueError, match="finite"):
        SourceFace(np.full((len(SOURCE_POINTS), 2), np.inf), np.zeros((2, 3)), np.zeros(16))


def test_the_cavity_is_painted_where_the_head_flow_reads_it():
    from facecodec.models.generator import CAVITY_RGB, paint_cavity

    image = torch.rand(1, 3, S, S)
    identity = _identity_deformation()
    cavity = torch.zeros(1, 1, E, E)
    cavity[..., 60:70, 50:80] = 1.0
    painted = paint_cavity(image, identity, cavity)
    inside = painted[0, :, 125:135, 105:155]  # the same place at 256²
    torch.testing.assert_close(inside, torch.tensor(CAVITY_RGB).view(3, 1, 1).expand_as(inside))
    torch.testing.assert_close(painted[..., :100, :], image[..., :100, :])


def test_composition_moves_what_the_flow_reads():
    image = torch.rand(1, 3, S, S)
    identity = _identity_deformation()
    still = torch.from_numpy(zero_flow(1, E))
    assert torch.equal(warp_image(image, identity, S, still), warp_image(image, identity, S))
    shift = torch.zeros(1, 3, E, E)
    shift[:, 0] = 8 * 2 / (S - 1)  # everywhere: read 8 px to the right
    moved = warp_image(image, identity, S, shift)
    torch.testing.assert_close(moved[..., 40:200, 40:200], image[..., 40:200, 48:208], atol=1e-4, rtol=0)
    composed = compose_expression(identity, shift)
    torch.testing.assert_close(composed[..., 2], identity[..., 2])  # depth untouched


def _identity_deformation(d: int = 4, h: int = 32) -> torch.Tensor:
    from facecodec.models.blocks import coordinate_grid

    return coordinate_grid(d, h, h, like=torch.zeros(1))[None]


def test_sender_codes_frames_against_its_source(sample_frames, face, basis):
    from facecodec.expression import ExpressionSender

    with ExpressionSender(basis) as sender:
        source_face = sender.source_face(sample_frames[0])
        assert source_face is not None
        np.testing.assert_allclose(source_face.points, face[list(SOURCE_POINTS), :2], atol=1e-4)
        codes = sender.encode(sample_frames[:6])
        assert codes.shape == (6, basis.size) and codes.dtype == np.float32
        np.testing.assert_allclose(codes[0], source_face.code, atol=1e-5)  # the source's own frame
        assert np.abs(codes[1:] - codes[0]).max() > 1e-3  # the speaker moves
        blank = np.zeros_like(sample_frames[:2])
        held = sender.encode(blank)  # no face: the last expression is held
        np.testing.assert_array_equal(held, np.repeat(codes[-1:], 2, axis=0))
        assert sender.source_face(blank[0]) is None
