"""The served decoder's process never imports torch: its stub starts about a second sooner (a crashed
server is back sooner, issue 22) and stays ~200 MB smaller. Checked in a fresh interpreter that
imports what `backend.DecoderModel` imports and decodes a call with the same `SessionStore`."""

from __future__ import annotations

import subprocess
import sys

from ..served import SAMPLE_CLIP

SCRIPT = """
import sys
import numpy
from facecodec.serving import backend
from facecodec.serving.bls import BlsNetworks, RoutedNetworks, gpu_session_parts
from facecodec.serving.configs import CONTROLS, CORRID, WARP_FILE
from facecodec.serving.metrics import DecoderMetrics
from facecodec.codec.session import HostArrays, SessionStore
from facecodec.codec.pipeline import OrtNetworks, ViewEdit
from facecodec.codec.receiver import frame_requests
from facecodec.codec.sender import Sender, stream_header
from facecodec.bitstream import decode_stream, stream_bytes
from facecodec.media import read_video
from facecodec.runtime import quiet_helper_threads

assert quiet_helper_threads() == ["blas"]  # no torch pool to limit
networks = OrtNetworks(sys.argv[1])
from facecodec.expression import ExpressionSender
face = ExpressionSender()  # the expression channel on, as by default: its warp is the receiver's too
header = stream_header("lite", 15, 256, 25.0, expression=face)
chunks = Sender(networks, header, expression=face).send(read_video(sys.argv[2], max_frames=4))
frames = decode_stream(stream_bytes(header, chunks)).frames
store = SessionStore(networks, max_sessions=1, idle_s=60.0)
requests = list(frame_requests(frames, session_id=1))
decoded = store.decode(requests[:1]) + store.decode(requests[1:])
assert len(decoded) == 4 and decoded[-1].shape == (1, 3, 256, 256), [d.shape for d in decoded]
ViewEdit(override=(10.0, None, None), offset=(0.0, 5.0, 0.0)).apply(numpy.zeros((1, 3), numpy.float32))
print("torch" in sys.modules)
"""


def test_the_served_decoders_imports_and_a_decoded_call_leave_torch_unloaded(onnx_dir):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(onnx_dir), str(SAMPLE_CLIP)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False", "the decoder's path imported torch"
