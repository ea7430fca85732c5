"""facecodec.rd — rate–distortion comparison of facecodec against conventional codecs.

`facecodec rd` sends each clip through facecodec at several settings (real bitstream round trip,
then the receiver's networks) and through ffmpeg anchors (x264 veryslow / zerolatency, x265, AV1)
at the same 256² size and frame rate, measures rate and quality (PSNR, SSIM, stLPIPS) of every
decode, and writes `report.md`, `rd.json` and one plot per metric.

Modules: `anchors` (ffmpeg encodes and sizes), `neural` (facecodec points, the quantisation-only
check), `quality` (metrics with cached reference features), `curves` (monotone curves, rate to
match, Bjøntegaard delta rate), `sweep` (the measurement), `summary` (comparisons), `report`.
"""

from .anchors import ANCHORS, DEFAULT_ANCHORS, AnchorCodec, AnchorEncode, encode_anchor
from .curves import BdResult, Match, MatchStatus, bd_rate, monotone_curve, rate_to_match
from .neural import (DEFAULT_SETTING, DEFAULT_SWEEP, NeuralEncode, NeuralSetting, QuantisationEffect,
                     quantisation_effect, run_setting)
from .quality import LpipsPlan, QualityMeter

__all__ = [
    "ANCHORS", "AnchorCodec", "AnchorEncode", "BdResult", "DEFAULT_ANCHORS", "DEFAULT_SETTING", "DEFAULT_SWEEP",
    "LpipsPlan", "Match", "MatchStatus", "NeuralEncode", "NeuralSetting", "QualityMeter", "QuantisationEffect",
    "bd_rate", "encode_anchor", "monotone_curve", "quantisation_effect", "rate_to_match", "run_setting",
]
