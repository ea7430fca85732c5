"""Acceptance: the torch-free `facecodec[client]` venv decodes a stream against the real server."""

from __future__ import annotations

import os
import subprocess

from facecodec.codec.receiver import decode_file
from facecodec.media import read_video

from ..served import assert_close_frames


def test_facecodec_client_decode_from_a_venv_without_torch(torch_free_venv, triton, local, stream_factory, tmp_path):
    stream = stream_factory(0, 6)
    out = tmp_path / "decoded.mp4"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(torch_free_venv / "bin" / "facecodec-client"), "-u", triton.grpc_url, "-t", "240",
               "decode", str(stream), "-o", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    decode_file(local, stream, tmp_path / "local.mp4")  # the same stream in-process, written the same way
    assert_close_frames(read_video(out), read_video(tmp_path / "local.mp4"))
