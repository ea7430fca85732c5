import math

import pytest
import torch

from facecodec import kinematics as kin


def random_angles(n=64, limit=90.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, generator=g) * 2 - 1) * limit for _ in range(3)]


def test_rotations_are_orthonormal_with_det_one():
    rot = kin.rotation_matrix(*random_angles())
    eye = torch.eye(3).expand_as(rot)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(rot.shape[0]), atol=1e-6)


def test_rotation_composition_is_rx_pitch_ry_yaw_rz_roll():
    yaw, pitch, roll = torch.tensor([20.0]), torch.tensor([-10.0]), torch.tensor([5.0])
    only = lambda y=0.0, p=0.0, r=0.0: kin.rotation_matrix(torch.tensor([y]), torch.tensor([p]), torch.tensor([r]))  # noqa: E731
    assert torch.allclose(kin.rotation_matrix(yaw, pitch, roll), only(p=-10.0) @ only(y=20.0) @ only(r=5.0), atol=1e-6)
    # yaw turns about y: the y axis is fixed and x moves towards -z for positive yaw
    a = 20 / 180 * 3.14
    expected = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    assert torch.allclose(only(y=20.0)[0], expected, atol=1e-6)


def test_degrees_use_the_reference_constant_3_14():
    rot = kin.rotation_matrix(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([180.0]))
    assert rot[0, 0, 0].item() == pytest.approx(math.cos(3.14), abs=1e-7)
    assert rot[0, 0, 0].item() != pytest.approx(-1.0, abs=1e-7)


def test_bins_to_degrees_conventions():
    uniform = torch.zeros(2, 66)
    assert kin.bins_to_degrees(uniform).tolist() == pytest.approx([-1.5, -1.5])
    onehot = torch.full((3, 66), -1e4)
    for row, idx in enumerate((0, 33, 65)):
        onehot[row, idx] = 0
    assert kin.bins_to_degrees(onehot).tolist() == pytest.approx([-99.0, 0.0, 96.0])


def test_transform_keypoints_is_r_xc_plus_t_plus_delta():
    g = torch.Generator().manual_seed(1)
    kp_c, t, exp = (torch.randn(*shape, generator=g) for shape in ((4, 15, 3), (4, 3), (4, 15, 3)))
    yaw, pitch, roll = random_angles(4)
    got = kin.transform_keypoints(kp_c, yaw, pitch, roll, t, exp)
    rot = kin.rotation_matrix(yaw, pitch, roll)
    for b in range(4):
        for k in range(15):
            assert torch.allclose(got[b, k], rot[b] @ kp_c[b, k] + t[b] + exp[b, k], atol=1e-5)


def test_frontalise_gives_identity_rotation():
    yaw, pitch, roll = kin.frontalise(*random_angles(8))
    assert torch.allclose(kin.rotation_matrix(yaw, pitch, roll), torch.eye(3).expand(8, 3, 3))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("value", [-30.0, 30.0])
def test_free_view_override_gives_the_requested_rotation(axis, value):
    angles = random_angles(8, limit=40)
    override = [None, None, None]
    override[axis] = value
    got = kin.free_view(*angles, override=tuple(override))
    assert torch.all(got[axis] == value)
    for other in {0, 1, 2} - {axis}:
        assert torch.equal(got[other], angles[other])
    expected = [a.clone() for a in angles]
    expected[axis] = torch.full((8,), value)
    assert torch.allclose(kin.rotation_matrix(*got), kin.rotation_matrix(*expected))


def test_free_view_offset_and_range_check():
    yaw, pitch, roll = random_angles(4, limit=10)
    got = kin.free_view(yaw, pitch, roll, offset=(10.0, -5.0, 0.0))
    assert torch.allclose(got[0], yaw + 10) and torch.allclose(got[1], pitch - 5) and torch.equal(got[2], roll)
    with pytest.raises(ValueError, match=r"yaw=31.0° is outside the free-view range ±30°"):
        kin.free_view(yaw, pitch, roll, override=(31.0, None, None))
    with pytest.raises(ValueError, match="roll offset"):
        kin.free_view(yaw, pitch, roll, offset=(0.0, 0.0, -45.0))


def test_relative_motion_onto_own_first_frame_is_identity():
    g = torch.Generator().manual_seed(2)
    clip = torch.randn(20, 15, 3, generator=g) * 0.3  # keypoints of 20 frames
    first = clip[:1].expand_as(clip)
    assert torch.allclose(kin.relative_keypoints(first, clip, first), clip, atol=1e-6, rtol=0)


def test_numpy_and_torch_take_the_same_code_path_to_the_same_numbers():
    """The receiver computes keypoints on numpy (no torch in the served decoder); the networks on torch."""
    import numpy as np

    yaw, pitch, roll = random_angles(8, limit=45.0)
    g = torch.Generator().manual_seed(1)
    kp_c, t, exp = torch.rand(8, 15, 3, generator=g), torch.rand(8, 3, generator=g), torch.rand(8, 15, 3, generator=g)
    expected = kin.transform_keypoints(kp_c, yaw, pitch, roll, t, exp)
    got = kin.transform_keypoints(*(x.numpy() for x in (kp_c, yaw, pitch, roll, t, exp)))
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (8, 15, 3)
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-6)
    np.testing.assert_allclose(kin.rotation_matrix(yaw.numpy(), pitch.numpy(), roll.numpy()),
                               kin.rotation_matrix(yaw, pitch, roll).numpy(), atol=1e-6)
    edited = kin.free_view(yaw.numpy(), pitch.numpy(), roll.numpy(), override=(10.0, None, None), offset=(0, 5, 0))
    for a, b in zip(edited, kin.free_view(yaw, pitch, roll, override=(10.0, None, None), offset=(0, 5, 0))):
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)
    assert all(isinstance(a, np.ndarray) and not a.any() for a in kin.frontalise(*edited))
