"""`stream_rate --streams`: a stream already written is re-packed into every packet layout with the same
decoded motion; the compact layout is the smaller."""

from __future__ import annotations

import dataclasses

import pytest

from facecodec.bitstream import stream_bytes
from facecodec.bitstream.synthetic import random_walk_motion
from facecodec.codec.pipeline import MotionBatch
from facecodec.codec.sender import Sender, stream_header
from facecodec.tools import stream_rate


@pytest.mark.parametrize("compact", [False, True])
def test_a_written_stream_repacks_to_the_same_motion_and_compact_is_smaller(expression_sender, compact, tmp_path):
    header = dataclasses.replace(stream_header("lite", 15, 64, 25.0, expression=expression_sender), compact=compact)
    motion = MotionBatch.from_motions(random_walk_motion(100, 15, seed=3, num_face=header.num_face))
    data = stream_bytes(header, Sender(None, header, expression=expression_sender).send(None, motion))
    rates = stream_rate.repack(data)  # raises if a layout decodes to other motion
    assert rates["as_sent"]["version"] == header.version
    assert rates["compact" if compact else "legacy"]["motion_kbps"] == pytest.approx(rates["as_sent"]["motion_kbps"])
    assert rates["compact"]["motion_kbps"] < 0.85 * rates["legacy"]["motion_kbps"]
    (tmp_path / "call.fcdc").write_bytes(data)
    assert stream_rate.main(["--streams", str(tmp_path), "--json", str(tmp_path / "rates.json")]) == 0
    assert (tmp_path / "rates.json").is_file()
