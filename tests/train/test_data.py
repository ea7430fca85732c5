"""Frame cache and pair sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecodec.train.data import ClipFrames, PairSampler, load_clips, sample_pose_frames
from facecodec.identity_split import read_clips


def test_loader_reads_a_shared_clip(shared_faces, tmp_path):
    manifest = shared_faces / "MANIFEST.tsv"
    shortest = min(read_clips(manifest), key=lambda c: c.frames)
    clips = load_clips(shared_faces, manifest, [shortest.identity], tmp_path, size=64, frame_stride=5)
    assert clips and all(c.identity == shortest.identity for c in clips)
    frames = clips[0].frames
    assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
    assert frames.std() > 10  # real pictures, not a blank decode
    again = load_clips(shared_faces, manifest, [shortest.identity], tmp_path, size=64, frame_stride=5)
    assert np.array_equal(again[0].frames, frames)  # second call reads the cache


def test_pairs_come_from_one_clip_and_flip_negates_yaw_and_roll():
    rng = np.random.default_rng(0)
    clips = [ClipFrames(f"id{i}", f"c{i}", np.full((6, 8, 8, 3), 40 * i, np.uint8), None) for i in range(3)]
    poses = [np.tile(np.array([[10.0, 5.0, -3.0]], np.float32), (6, 1)) for _ in clips]
    sampler = PairSampler(clips, drivings_per_source=2, rng=rng, augment=False, poses=poses)
    batch = sampler.sample(4)
    assert batch.sources.shape == (4, 3, 8, 8) and batch.drivings.shape == (4, 2, 3, 8, 8)
    for b in range(4):  # constant-valued clips: every frame of a group has its clip's value
        assert torch.allclose(batch.drivings[b], batch.sources[b].expand(2, -1, -1, -1))
    assert batch.pose_labels.shape == (4 + 8, 3)

    flipping = PairSampler(clips, 2, np.random.default_rng(1), augment=True, poses=poses)
    labels = torch.cat([flipping.sample(4).pose_labels for _ in range(8)])
    assert torch.all(labels[:, 1] == 5.0)  # pitch survives a mirror
    assert set(labels[:, 0].tolist()) == {10.0, -10.0} and torch.all(labels[:, 0] * labels[:, 2] == -30.0)


def test_landmarks_are_normalised_and_mirror_with_the_image():
    """A landmark at pixel x of an 8-px frame is at x/8·2−1; a mirrored group negates it."""
    clips = [ClipFrames("id", "c", np.zeros((4, 8, 8, 3), np.uint8), None)]
    points = [np.tile(np.array([[[2.0, 6.0], [np.nan, np.nan]]], np.float32), (4, 1, 1))]  # (T, L=2, 2)
    plain = PairSampler(clips, 2, np.random.default_rng(0), augment=False, landmarks=points).sample(3)
    assert plain.landmarks.shape == (3, 3, 2, 2)
    assert torch.allclose(plain.landmarks[:, :, 0], torch.tensor([-0.5, 0.5]))
    assert torch.isnan(plain.landmarks[:, :, 1]).all()  # no face stays "no face"
    mirrored = torch.cat([PairSampler(clips, 2, np.random.default_rng(s), augment=True, landmarks=points)
                          .sample(4).landmarks for s in range(4)])
    assert set(mirrored[:, :, 0, 0].flatten().tolist()) == {-0.5, 0.5}
    assert torch.all(mirrored[:, :, 0, 1] == 0.5)  # y is kept


def test_pose_frames_come_with_their_labels_and_mirror_together():
    """Each clip is a constant grey level with its own yaw: a sampled frame's label is its clip's."""
    clips = [ClipFrames(f"id{i}", f"c{i}", np.full((5, 8, 8, 3), 50 * i, np.uint8), None) for i in range(4)]
    poses = [np.tile(np.array([[10.0 * i, 2.0, 1.0 + i]], np.float32), (5, 1)) for i in range(4)]
    sampler = PairSampler(clips, 2, np.random.default_rng(0), augment=False, poses=poses)
    images, labels = sample_pose_frames(sampler, 12)
    assert images.shape == (12, 3, 8, 8) and labels.shape == (12, 3)
    clip_of = (images[:, 0, 0, 0] * 255 / 50).round().long()
    assert torch.equal(labels[:, 0], 10.0 * clip_of) and len(set(clip_of.tolist())) > 1
    mirrored = PairSampler(clips, 2, np.random.default_rng(3), augment=True, poses=poses)
    _, labels = sample_pose_frames(mirrored, 40)
    assert torch.all(labels[:, 1] == 2.0) and (labels[:, 2] < 0).any() and (labels[:, 2] > 0).any()


def test_yaw_balance_flattens_the_yaw_histogram():
    from facecodec.train.data import yaw_balance_weights

    yaw = np.array([0, 1, 2, 3, 4, 5, 6, 7, 35, np.nan])  # eight frontal frames, one turned, one unlabelled
    poses = [np.stack([yaw, np.zeros(10), np.zeros(10)], 1)]
    flat = yaw_balance_weights(poses, 1.0)[0]
    assert flat[:8].sum() == pytest.approx(flat[8])  # each 10° bin drawn alike
    assert flat[9] == pytest.approx(np.nanmean(flat[:9]))
    half = yaw_balance_weights(poses, 0.5)[0]
    assert half[8] / half[0] == pytest.approx(np.sqrt(8))
    assert np.allclose(yaw_balance_weights(poses, 0.0)[0], 1)


def test_pose_balanced_sampler_draws_turned_frames_more_often():
    clips = [ClipFrames("a", "c0", np.zeros((20, 8, 8, 3), np.uint8), None),
             ClipFrames("b", "c1", np.zeros((20, 8, 8, 3), np.uint8), None)]
    frontal = np.zeros((20, 3), np.float32)
    turned = frontal.copy()
    turned[:2, 0] = 40  # two of 40 frames are turned 40°
    poses = [frontal, turned]

    def turned_share(balance: float) -> float:
        sampler = PairSampler(clips, 1, np.random.default_rng(0), augment=False, poses=poses, pose_balance=balance)
        labels = torch.cat([sampler.sample(8).pose_labels for _ in range(50)])
        return float((labels[:, 0] > 30).float().mean())

    assert turned_share(0.0) == pytest.approx(2 / 40, abs=0.03)
    assert turned_share(1.0) == pytest.approx(0.5, abs=0.08)
    with pytest.raises(ValueError, match="needs pose labels"):
        PairSampler(clips, 1, np.random.default_rng(0), pose_balance=0.5)
