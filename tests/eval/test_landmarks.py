"""MediaPipe landmarks and the PnP head pose: faces found, blanks rejected, angle conventions."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from facecodec.landmarks import _POSE_INDEX, _POSE_MODEL, NUM_LANDMARKS, head_pose, rotation_to_angles


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rx(pitch) · Ry(yaw) · Rz(roll), angles in degrees (the convention of facecodec.kinematics)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _projected_landmarks(yaw: float, pitch: float, roll: float, size: int = 256) -> np.ndarray:
    """The pose model rotated and projected by the pinhole camera of `head_pose` → (1, 478, 2)."""
    camera = _POSE_MODEL @ _rotation(yaw, pitch, roll).T + np.array([0.0, 0.0, 40.0])  # 40 cm away
    pixels = camera[:, :2] / camera[:, 2:] * size + size / 2
    out = np.full((1, NUM_LANDMARKS, 2), 7.0)  # the other points do not enter the fit
    out[0, _POSE_INDEX] = pixels
    return out


def test_rotation_to_angles_inverts_the_kinematics_order():
    for angles in [(0, 0, 0), (20, -10, 5), (-30, 25, -15)]:
        assert np.allclose(rotation_to_angles(_rotation(*angles)), angles, atol=1e-9)


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (0, -20, 0), (0, 0, 15), (-20, 10, -8)])
def test_head_pose_recovers_a_projected_model(angles):
    assert np.allclose(head_pose(_projected_landmarks(*angles))[0], angles, atol=0.05)


def test_head_pose_of_missing_landmarks_is_nan():
    landmarks = np.concatenate([_projected_landmarks(10, 0, 0), np.full((1, NUM_LANDMARKS, 2), np.nan)])
    pose = head_pose(landmarks)
    assert pose.shape == (2, 3) and pose.dtype == np.float32
    assert np.isfinite(pose[0]).all() and np.isnan(pose[1]).all()


def test_landmarks_found_on_real_frames(landmarker, sample_frames):
    frames = sample_frames[:5]
    landmarks = landmarker.detect(frames)
    assert landmarks.shape == (5, NUM_LANDMARKS, 2) and landmarks.dtype == np.float32
    assert np.isfinite(landmarks).all()
    assert (landmarks > -10).all() and (landmarks < 266).all()  # within the 256² frame (mesh may graze the edge)
    nose, left_eye, right_eye = landmarks[0, 1], landmarks[0, 33], landmarks[0, 263]
    assert left_eye[0] < nose[0] < right_eye[0] and nose[1] > left_eye[1]


def test_blank_image_gives_nan(landmarker):
    blank = np.zeros((2, 256, 256, 3), np.uint8)
    blank[1] = 200
    assert np.isnan(landmarker.detect(blank)).all()


def test_rejects_wrong_input(landmarker):
    with pytest.raises(ValueError, match="uint8"):
        landmarker.detect(np.zeros((1, 64, 64, 3), np.float32))


def test_mirrored_frame_flips_yaw_and_roll_keeps_pitch(landmarker, sample_frames):
    frames = sample_frames[:3]
    pose = head_pose(landmarker.detect(frames))
    mirrored = head_pose(landmarker.detect(np.ascontiguousarray(frames[:, :, ::-1])))
    # this clip's speaker turns ~13° to his right (nose to image left) and tilts ~10° clockwise
    assert (pose[:, 0] > 5).all() and (pose[:, 2] > 5).all()
    assert np.allclose(mirrored[:, 0], -pose[:, 0], atol=3)
    assert np.allclose(mirrored[:, 2], -pose[:, 2], atol=3)
    assert np.allclose(mirrored[:, 1], pose[:, 1], atol=3)


def test_frontal_portrait_is_near_zero(landmarker, shared_faces):
    from facecodec.media import read_image

    portrait = read_image(shared_faces / "portraits" / "barack_obama__styletalk_Obama_clip2.png")
    pose = head_pose(landmarker.detect(portrait[None]))[0]
    assert (np.abs(pose) < 5).all(), pose


def test_speed(landmarker, sample_frames):
    """~10 ms a 256² frame on one core of the dev machine; the bound leaves room for a loaded CPU."""
    start = time.perf_counter()
    landmarker.detect(sample_frames[:10])
    assert (time.perf_counter() - start) / 10 < 0.25
