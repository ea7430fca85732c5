"""One training step: losses are finite, and repeated steps on a fixed batch lower the loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facecodec.models.generator import warp_image
from facecodec.train.config import LossWeights, TrainConfig
from facecodec.train.data import PairBatch
from facecodec.train.forward import (
    apply_affine_image,
    apply_affine_points,
    random_affine,
    random_views,
    run_model,
)
from facecodec.train.data import normalise_landmarks
from facecodec.train.dense_flow import dense_flow_targets
from facecodec.train.losses import (
    TrainingLoss,
    crop,
    face_boxes,
    face_crop_loss,
    freeview_flow_loss,
    head_pose_bin_loss,
    keypoint_prior,
    landmark_flow_loss,
    rotate_landmarks,
)
from facecodec.train.loop import build_state, optimise_on

CFG = TrainConfig(lr=2e-4, losses=LossWeights(perceptual_scales=(1.0,)))  # 64² images: one scale


def _fixed_batch(size: int = 64) -> PairBatch:
    """A smooth blob that moves between frames: something a model can learn to reproduce."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    frame = lambda cx: torch.stack(  # noqa: E731
        [torch.exp(-((x - cx) ** 2 + y**2) / 0.1), 0.5 + 0.3 * x, 0.5 - 0.3 * y])
    sources = torch.stack([frame(0.0), frame(-0.1)])
    drivings = torch.stack([torch.stack([frame(0.2), frame(-0.2)]), torch.stack([frame(0.1), frame(0.0)])])
    labels = torch.tensor([[0.0, 0, 0], [1, 0, 0], [5, 0, 0], [-5, 0, 0], [3, 0, 0], [0, 0, 0]])
    blob = lambda cx: torch.tensor([[cx, 0.0, -0.1], [cx + 0.2, 0.1, 0.0]])  # noqa: E731  two landmarks (x, y, z)
    landmarks = torch.stack([torch.stack([blob(0.0), blob(0.2), blob(-0.2)]),
                             torch.stack([blob(-0.1), blob(0.1), blob(0.0)])])  # (B, 1 + N, L, 2)
    return PairBatch(sources, drivings, np.zeros(2), np.zeros((2, 3)), labels, landmarks)


def test_repeated_steps_on_a_fixed_batch_lower_the_loss(tiny_config):
    torch.manual_seed(0)
    state = build_state(CFG, tiny_config)
    loss_fn = TrainingLoss(CFG.losses)
    batch, theta = _fixed_batch(), random_affine(4, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    totals = [optimise_on(state, loss_fn, batch, theta, CFG.grad_clip)["total"] for _ in range(6)]
    assert all(np.isfinite(totals))
    # BatchNorm in train mode on 2 sources makes single steps noisy; the trend must be clearly down.
    assert np.mean(totals[-2:]) < 0.7 * totals[0], totals
    assert state.step == 6


def test_initialisation_starts_at_the_repeat_source_baseline(tiny_config):
    """Fresh model ≈ the source image (blend on the warped source, near-identity flow)."""
    state = build_state(CFG, tiny_config)
    batch = _fixed_batch()
    with torch.no_grad():
        out = run_model(state.model.eval(), batch.sources, batch.drivings)
    repeated = batch.sources.repeat_interleave(2, 0)
    assert (out.generated - repeated).abs().mean() < 0.08
    assert (warp_image(repeated, out.deformation, 64) - repeated).abs().mean() < 0.05


def test_affine_points_follow_the_image_warp():
    """A bright dot at p in the warped image sits at theta·p in the original."""
    size = 65
    theta = torch.tensor([[[0.9, -0.2, 0.1], [0.2, 0.9, -0.05]]])
    image = torch.zeros(1, 1, size, size)
    warped_dot = torch.tensor([[[0.3, -0.2]]])  # (x, y) in the warped frame
    target = apply_affine_points(warped_dot, theta)[0, 0]
    yx = [int(((c + 1) / 2 * size - 0.5).round()) for c in (target[1], target[0])]
    image[0, 0, yx[0] - 1 : yx[0] + 2, yx[1] - 1 : yx[1] + 2] = 1
    out = apply_affine_image(image, theta)[0, 0]
    iy, ix = divmod(int(out.argmax()), size)
    grid = (torch.arange(size) + 0.5) / size * 2 - 1  # align_corners=False pixel centres
    assert abs(grid[ix] - 0.3) < 0.1 and abs(grid[iy] + 0.2) < 0.1


def test_keypoint_prior_is_zero_for_spread_keypoints_at_target_depth():
    spread = torch.tensor([[[-0.5, -0.5, 0.33], [0.5, -0.5, 0.33], [0.0, 0.5, 0.33]]])
    assert keypoint_prior(spread, 0.1, 0.33).item() < 1e-6
    assert keypoint_prior(torch.zeros(1, 3, 3), 0.1, 0.33).item() > 0.5


def test_config_serialises():
    text = dataclasses.replace(CFG, seed=3).to_json()
    assert '"seed": 3' in text and '"equivariance": 10.0' in text


def test_validation_reports_model_and_baseline(tiny_config):
    from facecodec.perceptual import StLpips
    from facecodec.train.validate import ValidationSet, validate

    state = build_state(CFG, tiny_config)
    batch = _fixed_batch()
    result = validate(state.model, ValidationSet(batch.sources, batch.drivings), {"alex": StLpips("alex")})
    assert set(result) == {"psnr", "baseline_psnr", "lpips_alex", "baseline_lpips_alex"}
    assert all(np.isfinite(v) for v in result.values())
    assert state.model.training  # validation leaves the model as it found it


def _shift_deformation(batch: int, shift: tuple[float, float], size: int = 16, depth: int = 2) -> torch.Tensor:
    """(batch, D, h, w, 3): every output position reads the source at its own (x, y) + shift."""
    lin = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    grid = torch.stack([x + shift[0], y + shift[1], torch.zeros_like(x)], dim=-1)
    return grid.expand(batch, depth, -1, -1, -1).clone()


def test_landmark_flow_loss_measures_how_far_the_flow_misses_the_source_landmarks():
    driving = torch.tensor([[-0.3, 0.2], [0.4, -0.1], [0.0, 0.5]])
    landmarks = torch.stack([driving + torch.tensor([0.1, -0.05]), driving])[None]  # (B=1, 1+N=2, L, 2)
    exact = landmark_flow_loss(_shift_deformation(1, (0.1, -0.05)), landmarks)
    assert exact.item() < 1e-5
    missed = landmark_flow_loss(_shift_deformation(1, (0.0, 0.0)), landmarks)
    assert abs(missed.item() - 0.15) < 1e-4  # |0.1| + |−0.05| for every landmark
    landmarks[0, 1, 2] = float("nan")  # a landmark missing in one frame is left out, not NaN
    assert torch.isfinite(landmark_flow_loss(_shift_deformation(1, (0.0, 0.0)), landmarks))


def test_pose_bin_loss_is_lowest_for_the_labelled_bin():
    labels = torch.tensor([[12.0, -3.0, 0.0], [float("nan"), 0.0, 0.0]])
    bins = ((labels[:1] + 99) / 3).round().long()  # 37, 32, 33
    right = torch.full((2, 3, 66), -10.0)
    right[0, torch.arange(3), bins[0]] = 10.0
    wrong = torch.roll(right, 5, dims=-1)
    assert head_pose_bin_loss(right, labels).item() < 1e-3 < 1 < head_pose_bin_loss(wrong, labels).item()


def test_turned_landmarks_read_as_the_requested_pose_by_pnp():
    """The free-view target geometry agrees with the measurement: a frontal head's landmarks turned
    to yaw/pitch/roll +25° are measured (MediaPipe model + solvePnP) at that pose."""
    pytest.importorskip("cv2")
    from facecodec.landmarks import _POSE_INDEX, _POSE_MODEL, NUM_LANDMARKS, head_pose

    size, distance = 256, 40.0  # px focal (as head_pose's camera); head 40 cm away: a face ≈ 100 px wide
    model = _POSE_MODEL.copy()
    model[:, 2] += distance  # camera coordinates, cm
    points = np.full((NUM_LANDMARKS, 3), np.nan)
    points[_POSE_INDEX, :2] = size / 2 + size * model[:, :2] / model[:, 2:]  # perspective projection
    points[_POSE_INDEX, 2] = (model[:, 2] - distance) * size / distance  # depth in pixels at the face
    normalised = torch.from_numpy(normalise_landmarks(points, size, flipped=False))[None]
    for axis in range(3):
        target = torch.zeros(1, 3)
        target[0, axis] = 25.0
        turned = rotate_landmarks(normalised, torch.zeros(1, 3), target)[0].numpy()
        pixels = np.nan_to_num((turned + 1) * size / 2)  # PnP reads only the nine pose landmarks
        measured = head_pose(pixels[None], size=size)[0]
        assert abs(measured[axis] - 25.0) < 2.0, (axis, measured)
        assert np.abs(np.delete(measured, axis)).max() < 2.0, (axis, measured)


def test_freeview_flow_loss_is_zero_for_the_identity_edit_and_grows_with_the_turn():
    landmarks = torch.tensor([[[-0.3, 0.2, -0.1], [0.4, -0.1, 0.05], [0.0, 0.5, -0.2]]])
    pose = torch.tensor([[5.0, -3.0, 2.0]])
    identity = _shift_deformation(1, (0.0, 0.0))
    keep = torch.full((1, 3), float("nan"))
    assert freeview_flow_loss(identity, landmarks, pose, keep).item() < 1e-5
    small, large = (freeview_flow_loss(identity, landmarks, pose, torch.tensor([[a, np.nan, np.nan]])).item()
                    for a in (10.0, 30.0))
    assert 0 < small < large


def test_a_step_with_free_view_edits_and_pose_frames_has_every_term(tiny_config):
    state = build_state(CFG, tiny_config)
    batch = _fixed_batch()
    theta = random_affine(4, 10, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    views = random_views(2, np.random.default_rng(0), 30.0, 0.5)
    pose_frames = (batch.drivings.flatten(0, 1), batch.pose_labels[2:])
    terms = optimise_on(state, TrainingLoss(CFG.losses), batch, theta, CFG.grad_clip, views, pose_frames)
    assert np.isfinite(terms["freeview_flow"]) and terms["freeview_flow"] > 0
    assert terms["head_pose_frames"] > 0 and terms["head_pose_bins_frames"] > 0
    assert all(np.isfinite(v) for v in terms.values())
    assert "face_crop" not in terms  # off by default
    with_crop = dataclasses.replace(CFG.losses, face_crop=1.0)
    terms = optimise_on(state, TrainingLoss(with_crop), batch, theta, CFG.grad_clip, views, pose_frames)
    assert np.isfinite(terms["face_crop"]) and terms["face_crop"] > 0
    assert "decoder" not in terms  # off by default
    with_decoder = dataclasses.replace(CFG.losses, decoder=1.0)
    terms = optimise_on(state, TrainingLoss(with_decoder), batch, theta, CFG.grad_clip, views, pose_frames)
    assert np.isfinite(terms["decoder"]) and terms["decoder"] > 0
    assert "dense_flow" not in terms  # off by default
    with_flow = dataclasses.replace(CFG.losses, dense_flow=1.0)
    targets = dense_flow_targets(batch.sources, batch.drivings, batch.landmarks)
    terms = optimise_on(state, TrainingLoss(with_flow), batch, theta, CFG.grad_clip, views, pose_frames, targets)
    assert np.isfinite(terms["dense_flow"]) and terms["dense_flow"] > 0


def test_generator_parts_blend_the_decoder_with_the_warped_source():
    """`parts` returns the served image and the decoder's own; with the blend forced to the
    decoder (bias −∞) they coincide, and the decoder loss of an image against itself is 0."""
    from facecodec.models.generator import Generator, GeneratorConfig
    from facecodec.train.losses import decoder_loss
    from facecodec.perceptual import PerceptualLoss

    torch.manual_seed(0)
    cfg = GeneratorConfig(feature_channels=4, feature_depth=2, warp_channels=8, decoder_channels=8,
                          num_middle_blocks=1, up_channels=(), spade_hidden=8, feature_size=16, image_size=64,
                          source_skip=True)
    gen = Generator(cfg).eval()
    feats, src = torch.rand(2, 4, 2, 16, 16), torch.rand(2, 3, 64, 64)
    from facecodec.models.blocks import coordinate_grid

    identity = coordinate_grid(2, 16, 16, like=feats)[None].expand(2, -1, -1, -1, -1)
    occlusion = torch.ones(2, 1, 16, 16)
    with torch.no_grad():
        image, decoded = gen.parts(feats, identity, occlusion, src)
        assert torch.equal(image, gen(feats, identity, occlusion, src))
        assert not torch.allclose(image, decoded)
        blend_bias = gen.decoder.conv_img.bias.view(4, -1)[3]  # channel-major before the pixel shuffle
        blend_bias.fill_(-1e4)
        image, decoded = gen.parts(feats, identity, occlusion, src)
        assert torch.allclose(image, decoded, atol=1e-6)
        assert float(decoder_loss(PerceptualLoss((1.0,)), decoded, decoded)) == pytest.approx(0, abs=1e-6)


def test_face_crop_boxes_crops_and_loss():
    points = torch.tensor([[[-0.5, -0.2], [0.1, 0.4], [float("nan"), 0.0]],  # a NaN landmark is ignored
                           [[float("nan")] * 2] * 3])  # no face
    centres, half = face_boxes(points, margin=1.0)
    assert torch.allclose(centres[0], torch.tensor([-0.2, 0.1])) and half[0] == pytest.approx(0.3)
    assert torch.isnan(half[1])
    # a crop of a horizontal ramp reads the ramp's values inside the box only
    ramp = torch.linspace(-1, 1, 64).expand(1, 3, 64, 64).contiguous()
    cut = crop(ramp, centres[:1], half[:1], 32)
    assert cut.min() > -0.55 and cut.max() < 0.15
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    perceptual = TrainingLoss(CFG.losses).perceptual
    assert face_crop_loss(perceptual, image, image, points, size=32) == pytest.approx(0, abs=1e-6)
    assert face_crop_loss(perceptual, image.flip(-1), image, points, size=32) > 0.01
    assert face_crop_loss(perceptual, image.flip(-1), image, points[1:].expand(2, -1, -1), size=32) == 0


def test_learning_rates_follow_the_config_with_a_warm_up(tiny_config):
    """A resumed run takes the rates of its config (e.g. a lower --lr to finish), ramped at the start."""
    from facecodec.train.loop import _apply_learning_rates

    cfg = dataclasses.replace(CFG, lr=1e-4, head_lr_scale=0.3, warmup_steps=50)
    state = build_state(CFG, tiny_config)
    _apply_learning_rates(state.optimizer, cfg, step=1000)
    assert [g["lr"] for g in state.optimizer.param_groups] == pytest.approx([1e-4, 3e-5])
    _apply_learning_rates(state.optimizer, cfg, step=4)
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gets")
def test_train_on_cuda_without_a_gpu_says_so_before_any_work(tmp_path):
    from facecodec.cli import main

    with pytest.raises(SystemExit, match="sees no CUDA GPU"):
        main(["train", "--data", str(tmp_path / "faces" / "train"), "--out", str(tmp_path / "run"), "--device", "cuda"])
    assert not (tmp_path / "run").exists()


def test_decoder_loss_is_refused_where_there_is_no_source_blend(tmp_path):
    from facecodec.cli import main

    with pytest.raises(SystemExit, match="blends no source image in"):
        main(["train", "--preset", "vox256", "--data", str(tmp_path / "faces" / "train"), "--out",
              str(tmp_path / "run"), "--decoder-loss", "1"])
    assert not (tmp_path / "run").exists()


def test_a_negative_prefetch_is_refused_before_any_work(tmp_path):
    from facecodec.cli import main

    with pytest.raises(SystemExit, match="--prefetch: expected 0 or more"):
        main(["train", "--data", str(tmp_path / "faces" / "train"), "--out", str(tmp_path / "run"), "--prefetch", "-1"])
    assert not (tmp_path / "run").exists()


def test_weighted_sums_the_terms_and_logs_each_unweighted():
    loss_fn = TrainingLoss(LossWeights(pixel_l1=2.0, perceptual=0.5))
    total, logged = loss_fn.weighted({"pixel_l1": torch.tensor(0.25), "perceptual": torch.tensor(3.0),
                                      "perceptual_frames": torch.tensor(1.0)})
    assert float(total) == pytest.approx(2 * 0.25 + 0.5 * 3 + 0.5 * 1)
    assert logged == {"pixel_l1": 0.25, "perceptual": 3.0, "perceptual_frames": 1.0}
