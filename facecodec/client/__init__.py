"""Thin gRPC clients of the served codec (tritonclient.grpc): no model logic, only requests.

`RemoteNetworks` and `DecoderSession` reach the models; `calls` runs the codec's sender and receiver
(`facecodec.codec`) on them: encode, decode, call, reenact and freeview; `cli` is the command line
(`facecodec-client`, `python -m facecodec.client`). Needs no torch (`pip install facecodec[client]`)
and nothing of `facecodec.serving`.
"""

from .remote import DEFAULT_URL, ClientError, DecoderSession, RemoteNetworks, ServedModel

__all__ = ["DEFAULT_URL", "ClientError", "DecoderSession", "RemoteNetworks", "ServedModel"]
