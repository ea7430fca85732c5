"""Thin gRPC clients of the served codec (tritonclient.grpc): no model logic, only requests.

`RemoteNetworks` and `DecoderSession` reach the models; `calls` chains them with the bitstream into
encode, decode, call, reenact and freeview; `cli` is the command line (`python -m facecodec.client`).
"""

from .remote import DEFAULT_URL, ClientError, DecoderSession, RemoteNetworks, ServedModel

__all__ = ["DEFAULT_URL", "ClientError", "DecoderSession", "RemoteNetworks", "ServedModel"]
