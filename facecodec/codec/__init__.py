"""The codec: ONE sender (frames → packets) and ONE receiver (packets → frames), below serving and client.

- `pipeline`: the `Networks` interface (eager PyTorch, ONNX Runtime; the server and the client add
  BLS and gRPC ones), `MotionBatch` and its conversion to and from bitstream `Motion`s, `Receiver`.
- `sender`: `Sender`, the one sender loop; `stream_header`; `encode_file`.
- `session`: call sessions (`FrameRequest`, `SessionStore`): the receiver's state, one source per
  call, swapped on a keyframe — the Triton `decoder` model runs it, and so does `receiver`.
- `receiver`: decoded packets → requests → frames in-process (`receive`, `decode_file`).
- `refine`: the sender-side motion search (eager PyTorch).

Nothing here imports torch at module level, so the gRPC client runs it without torch.
"""
