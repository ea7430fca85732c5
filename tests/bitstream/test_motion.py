import numpy as np
import pytest

from facecodec.bitstream import Motion, split_batch, stack_batch
from facecodec.bitstream.motion import vector_length


def test_vector_layout_is_angles_then_t_then_exp_kp_major():
    exp = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    motion = Motion(1.5, -2.0, 3.25, [0.1, 0.2, 0.3], exp)
    vector = motion.to_vector()
    assert vector.dtype == np.float32 and vector.shape == (vector_length(2),) == (12,)
    np.testing.assert_array_equal(vector, np.float32([1.5, -2.0, 3.25, 0.1, 0.2, 0.3, 0, 0.1, 0.2, 0.3, 0.4, 0.5]))
    back = Motion.from_vector(vector, 2)
    np.testing.assert_array_equal(back.to_vector(), vector)
    assert back.num_kp == 2 and back.exp[1, 2] == np.float32(0.5)


def test_motion_is_read_only_and_validates_shapes():
    motion = Motion.neutral(15)
    assert motion.num_kp == 15 and not motion.to_vector().any()
    with pytest.raises(ValueError):
        motion.exp[0, 0] = 1.0
    with pytest.raises(ValueError, match=r"exp: expected shape \(K, 3\)"):
        Motion(0, 0, 0, np.zeros(3), np.zeros(15))
    with pytest.raises(ValueError, match="t: expected shape"):
        Motion(0, 0, 0, np.zeros(2), np.zeros((15, 3)))
    with pytest.raises(ValueError, match="needs 51 values"):
        Motion.from_vector(np.zeros(50), 15)


def test_split_and_stack_batch_round_trip():
    rng = np.random.default_rng(0)
    yaw, pitch, roll = rng.normal(size=(3, 4)).astype(np.float32)
    t, exp = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 15, 3)).astype(np.float32)
    motions = split_batch(yaw, pitch, roll, t, exp)
    assert len(motions) == 4 and motions[2].yaw == yaw[2]
    for got, want in zip(stack_batch(motions), (yaw, pitch, roll, t, exp)):
        np.testing.assert_array_equal(got, want)
