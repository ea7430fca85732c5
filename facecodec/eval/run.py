"""`facecodec eval`: self-reenactment of clips (codec vs repeated-source baseline), optional free-view
grid and motion transfer, written to a report folder.

Folder layout: report.md, metrics.json, figures/*.png, videos/<clip>.mp4 (original | codec | error heat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bitstream import RefreshPolicy
from ..bitstream.keyframe import DEFAULT_QUALITY
from ..media import probe_fps, read_still, read_video, write_video
from ..codec.pipeline import Networks
from ..codec.refine import RefineConfig, motion_search
from . import figures
from ..expression import ExpressionSender
from .codec import self_reenact, transfer_motion
from .compare import Evaluator, FaceAnalysis
from .freeview import evaluate_freeview, save_grid
from .identity import SAME_PERSON_THRESHOLD
from .metrics import breathing, eye_opening, follows, identity_distance, jitter, mouth_opening, nanmean
from .report import ClipResult, metrics_document, write_json, write_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What runs: the networks, their preset and K, and a label of the weights for the report."""

    networks: Networks
    preset: str
    num_kp: int
    weights: str


def validation_clips(manifest: Path) -> list[Path]:
    """Clips of the validation identities of `facecodec.identity_split` (paths beside the manifest)."""
    from ..identity_split import read_clips, split_identities

    _, val_ids = split_identities(manifest)
    wanted = set(val_ids)
    return [manifest.parent / c.file for c in read_clips(manifest) if c.identity in wanted]


def evaluate_clip(model: ModelInfo, path: Path, evaluator: Evaluator, *, max_frames: int | None,
                  video_dir: Path | None, stream_dir: Path | None = None, refresh: RefreshPolicy | None = None,
                  refine: RefineConfig | None = None, keyframe_quality: int = DEFAULT_QUALITY,
                  expression: ExpressionSender | None = None) -> ClipResult:
    """One clip: codec and baseline against the original; writes the side-by-side video and the
    bitstream (`<stem>.fcdc`, replayable with `facecodec decode`) into the folders given."""
    original = read_video(path, max_frames=max_frames)
    fps = probe_fps(path)
    search = None if refine is None else motion_search(model.networks, refine)
    run = self_reenact(model.networks, original, preset=model.preset, num_kp=model.num_kp, fps=fps, refresh=refresh,
                       search=search, keyframe_quality=keyframe_quality, expression=expression)
    faces = evaluator.analyse(original)
    outputs = {"model": (run.frames, evaluator.analyse(run.frames)),
               "baseline": (run.keyframe[None], evaluator.analyse(run.keyframe[None]))}  # one frozen frame
    openings = {key: _openings(analysis) for key, analysis in
                (("original", faces), ("model", outputs["model"][1]), ("baseline", outputs["baseline"][1]))}
    result = ClipResult(
        name=path.stem, path=str(path), fps=fps, frames=len(original), kbps=run.kbps,
        motion_kbps=run.motion_kbps, keyframe_bytes=run.keyframe_bytes,
        faces={"original": faces.faces_found, "model": outputs["model"][1].faces_found,
               "baseline": outputs["baseline"][1].faces_found * len(original)},
        per_frame=evaluator.compare(original, faces, outputs),
        keyframes=run.keyframes,
        stability=_stability(faces, outputs["model"][1], outputs["baseline"][1]),
        openings=openings,
        expression={o: _follows(openings["original"], openings[o], len(original)) for o in ("model", "baseline")},
    )
    if stream_dir is not None:
        (stream_dir / f"{path.stem}.fcdc").write_bytes(run.stream)
    if video_dir is not None:
        heat = figures.error_heat(original, run.frames)
        write_video(video_dir / f"{path.stem}.mp4", figures.side_by_side(original, run.frames, heat), fps=fps)
    codec, base = result.means("model"), result.means("baseline")
    st = result.stability
    log.info("%s: %d frames, PSNR %.2f vs baseline %.2f dB, %.1f kbit/s, jitter %.2f (camera %.2f), breathing %.1f %%",
             path.stem, len(original), codec["psnr"], base["psnr"], run.kbps, st["jitter_codec"], st["jitter_camera"],
             st["breathing_codec"])
    return result


def _openings(faces: FaceAnalysis) -> dict[str, np.ndarray]:
    return {"mouth": mouth_opening(faces.landmarks), "eye": eye_opening(faces.landmarks)}


def _follows(original: dict[str, np.ndarray], decoded: dict[str, np.ndarray], frames: int) -> dict[str, float]:
    """`report.EXPRESSION` of one output; a one-frame output (the baseline) stands for every frame."""
    out = {}
    for part in ("mouth", "eye"):
        out[f"{part}_corr"], out[f"{part}_amp"] = follows(original[part], np.broadcast_to(decoded[part], (frames,)))
    return out


def _stability(camera: FaceAnalysis, codec: FaceAnalysis, baseline: FaceAnalysis) -> dict[str, float]:
    """`report.STABILITY` of one clip from its landmarks."""
    return {"jitter_camera": jitter(camera.landmarks), "jitter_codec": jitter(codec.landmarks),
            "breathing_codec": breathing(codec.landmarks, camera.landmarks),
            "breathing_baseline": breathing(baseline.landmarks, camera.landmarks)}


def evaluate_transfer(model: ModelInfo, portrait_path: Path, driver_path: Path, evaluator: Evaluator, out: Path,
                      *, max_frames: int | None, expression: ExpressionSender | None = None) -> dict:
    """Motion transfer: the portrait driven by the driver clip (relative motion); per-frame AED of the
    output to the portrait (identity kept) and to the driver frame (identity leaking)."""
    portrait = read_still(portrait_path)
    driver = read_video(driver_path, max_frames=max_frames)
    output = transfer_motion(model.networks, portrait, driver, expression=expression)
    faces_out = evaluator.analyse(output)
    faces_portrait, faces_driver = evaluator.analyse(portrait[None]), evaluator.analyse(driver)
    aed_portrait = identity_distance(faces_out.embedding, faces_portrait.embedding)
    aed_driver = identity_distance(faces_out.embedding, faces_driver.embedding)
    fps = probe_fps(driver_path)
    write_video(out / "videos" / "transfer.mp4",
                figures.side_by_side(np.repeat(portrait[None], len(driver), axis=0), driver, output), fps=fps)
    figures.plot_transfer(out / "figures" / "transfer_aed.png", aed_portrait, aed_driver, SAME_PERSON_THRESHOLD)
    return {
        "portrait": str(portrait_path), "driver": str(driver_path), "frames": len(driver),
        "aed_driver_to_portrait": float(identity_distance(faces_driver.embedding, faces_portrait.embedding).mean()),
        "mean_aed_to_portrait": nanmean(aed_portrait), "mean_aed_to_driver": nanmean(aed_driver),
        "frames_closer_to_portrait": _fraction_closer(aed_portrait, aed_driver),
        "per_frame": {"aed_to_portrait": aed_portrait, "aed_to_driver": aed_driver},
    }


def _fraction_closer(aed_portrait: np.ndarray, aed_driver: np.ndarray) -> float:
    """Share of all frames whose output is nearer the portrait than the driver; a frame where a
    face is missing counts as a failure (it did not keep the identity)."""
    closer = np.asarray(aed_portrait) < np.asarray(aed_driver)  # NaN compares False
    return float(closer.mean()) if closer.size else float("nan")


def _transfer_lines(t: dict) -> list[str]:
    return [
        "## Motion transfer", "",
        f"`{Path(t['portrait']).name}` driven by `{Path(t['driver']).name}` ({t['frames']} frames, relative "
        f"motion). Mean AED of the output to the portrait {t['mean_aed_to_portrait']:.3f}, to the driver "
        f"{t['mean_aed_to_driver']:.3f} (driver vs portrait themselves: {t['aed_driver_to_portrait']:.3f}; same "
        f"person < {SAME_PERSON_THRESHOLD}). Output nearer the portrait than the driver on "
        f"{100 * t['frames_closer_to_portrait']:.1f} % of the frames. "
        "Video: `videos/transfer.mp4` (portrait | driver | output).", "",
        "![motion transfer AED](figures/transfer_aed.png)", "",
    ]


def _freeview_lines(doc: dict) -> list[str]:
    lines = ["## Free view", "", "![free-view grid](figures/freeview_grid.png)", "",
             "| view | requested | measured yaw / pitch / roll | error | rel. error |", "|---|---|---|---|---|"]
    for v in doc["views"]:
        measured = " / ".join("n/a" if m is None or not np.isfinite(m) else f"{m:+.1f}" for m in v["measured"])
        lines.append(f"| {v['label']} | {v['requested']:+.0f}° | {measured} | {v['abs_error']:.1f}° | "
                     f"{v['rel_error']:.1f}° |")
    lines += ["", f"Mean error {doc['mean_abs_error']:.1f}°, relative {doc['mean_rel_error']:.1f}° "
              "(definitions: `facecodec.eval.freeview`).", ""]
    return lines


def _describe(policy: RefreshPolicy) -> str:
    return (f"a new keyframe when an angle moved > {policy.max_angle_deg:g}° or the head > {policy.max_shift:g} "
            f"from the current source's, at most one per {policy.min_interval_s:g} s")


def _describe_refine(cfg: RefineConfig) -> str:
    smoothed = f", then smoothed over time ({', '.join(f'{t:g}' for t in cfg.smoothing)})" if cfg.smoothing else ""
    return (f"sender-side motion search, {cfg.steps} Adam steps per frame on the L1 of the receiver's render "
            f"(facecodec.codec.refine; step sizes {cfg.lr_angle:g}°, {cfg.lr_shift:g}, δ {cfg.lr_expression:g})"
            f"{smoothed}")


def _describe_expression(sender: ExpressionSender) -> str:
    return (f"expression channel on: {sender.basis.size} coefficients per frame (basis {sender.basis.id:08x}) from "
            "MediaPipe landmarks at the sender, drawn by a thin-plate warp of the source (facecodec.expression)")


def run_eval(model: ModelInfo, clips: list[Path], out: Path, *, clips_from: str, max_frames: int | None = None,
             lpips_nets: tuple[str, ...] = ("alex", "vgg"), identity: bool = True, videos: bool = True,
             freeview_image: Path | None = None, transfer: tuple[Path, Path] | None = None,
             evaluator: Evaluator | None = None, refresh: RefreshPolicy | None = None,
             refine: RefineConfig | None = None, keyframe_quality: int = DEFAULT_QUALITY,
             expression: bool = True) -> dict:
    """Evaluate `clips` and write the report folder `out`; returns the metrics.json document.

    `evaluator`: reuse loaded metric models (the caller then owns and closes them; `lpips_nets` and
    `identity` are ignored). `refresh`: the sender may refresh the source keyframe (`RefreshPolicy`);
    the baseline still repeats the first frame. `refine`: the sender's motion search (`facecodec.codec.refine`).
    `keyframe_quality`: WebP quality of the source picture, for the codec and the baseline alike.
    `expression`: send the expression channel (`facecodec.expression`; the sender's landmarks share
    the evaluator's MediaPipe).
    """
    if not clips:
        raise ValueError("no clips to evaluate")
    for sub in ("figures", "videos", "streams"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    owned = evaluator is None
    evaluator = evaluator or Evaluator(lpips_nets=lpips_nets, identity=identity)
    sender = ExpressionSender(landmarker=evaluator.landmarker) if expression else None
    try:
        results = [evaluate_clip(model, p, evaluator, max_frames=max_frames, refresh=refresh, refine=refine,
                                 keyframe_quality=keyframe_quality, video_dir=out / "videos" if videos else None,
                                 stream_dir=out / "streams",
                                 expression=sender)
                   for p in clips]
        info = {"preset": model.preset, "weights": model.weights, "clips_from": clips_from, "max_frames": max_frames,
                "keyframe_quality": keyframe_quality, "refresh": None if refresh is None else _describe(refresh),
                "refine": None if refine is None else _describe_refine(refine),
                "expression": None if sender is None else _describe_expression(sender)}
        doc = metrics_document(results, info)
        names = evaluator.metric_names
        figs = {"Per-frame curves": "figures/curves.png", "Means: codec vs baseline": "figures/bars.png",
                f"Mouth and eye opening over time ({results[0].name})": "figures/openings.png"}
        figures.plot_curves(out / figs["Per-frame curves"], results)
        figures.plot_openings(out / "figures" / "openings.png", results[0])
        figures.plot_bars(out / figs["Means: codec vs baseline"], results, names)
        extra: list[str] = []
        if freeview_image is not None:
            fv = evaluate_freeview(model.networks, read_still(freeview_image), evaluator.landmarker)
            save_grid(out / "figures" / "freeview_grid.png", fv, title=f"free view, {model.preset}")
            doc["freeview"] = {"image": str(freeview_image), **fv.to_dict()}
            extra += _freeview_lines(doc["freeview"])
        if transfer is not None:
            doc["transfer"] = evaluate_transfer(model, *transfer, evaluator, out, max_frames=max_frames,
                                                expression=sender)
            extra += _transfer_lines(doc["transfer"])
    finally:
        if owned:
            evaluator.close()
    write_json(out / "metrics.json", doc)
    write_report(out / "report.md", results, info, names, figs, extra)
    return doc
