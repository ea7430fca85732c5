"""facecodec.bitstream — what travels between sender and receiver (pure numpy/Python).

A stream is a header followed by packets. Live use: `Encoder.encode(motion, timestamp_ms)`
returns the bytes of one frame's packet(s); `Decoder.push(data)` returns the frames now
due (exactly one `DecodedFrame` per frame number, concealed if lost); `Decoder.flush()`
ends the stream. Files: `write_stream` / `read_stream` (`stream_bytes`: header + packets in memory).
The sender loop around the `Encoder` is `facecodec.codec.Sender`.

Stream header (sent once; big-endian; sizes in bytes):

| field                        | size  | meaning                                          |
| ---------------------------- | ----- | ------------------------------------------------ |
| magic                        | 4     | b"FCDC"                                          |
| version                      | 1     | 3 compact packets (default); legacy: 1, or 2 with expression/tags |
| body_length                  | 2     | bytes of the body (preset_length … step_face)    |
| preset_length, preset        | 1 + n | ASCII preset name, 1…32 chars ("lite", "vox256") |
| num_kp                       | 1     | K, keypoints per frame                           |
| height, width                | 2 + 2 | source image size, pixels                        |
| fps_num, fps_den             | 2 + 2 | frame rate as a fraction (25/1, 30000/1001)      |
| intra_interval               | 2     | frames between intra MOTION packets              |
| step_angle, step_t, step_exp | 8 × 3 | float64 base steps: degrees, normalised units    |
| features (versions 2, 3)     | 1     | bit 0 expression channel, bit 1 authenticated packets (version 2: not 0) |
| face_basis (expression)      | 4     | id of the expression basis (`ExpressionBasis.id`) |
| num_face (expression)        | 1     | P ≥ 1, expression-channel coefficients per frame |
| step_face (expression)       | 8     | float64 base step of the coefficients            |
| crc32                        | 4     | zlib.crc32 of all preceding header bytes         |

Compact packet (version 3, `StreamHeader.compact`; every packet; big-endian):

| field        | size | meaning                                                          |
| ------------ | ---- | ---------------------------------------------------------------- |
| length       | 1–4  | LEB128 varint: bytes after this field, check included            |
| head         | 1    | bits 0–1 type (1 KEYFRAME, 2 MOTION); bit 2 INTRA; bit 3 REFRESH; |
|              |      | bit 4 ANCHOR; bit 5 QSCALE; bits 6–7 zero                        |
| seq          | 1    | without ANCHOR: frame number mod 256 (unwrapped by the decoder)  |
| seq          | 1–4  | with ANCHOR: varint frame number mod 2²⁸                         |
| timestamp_ms | 1–5  | with ANCHOR only: varint capture time, ms mod 2³²                |
| body         | n    | see below                                                        |
| check        | 2/4/8 | CRC-16/CCITT-FALSE of all preceding bytes if length ≤ 127, else |
|              |      | their CRC32; authenticated streams: the 8-byte tag instead      |

Timestamps are implied: a packet without ANCHOR is at the last anchor's timestamp plus (frame − anchor's frame)
frame durations, at the header's exact frame rate (`packet.implied_timestamp`, integer ms). The sender makes a
packet an ANCHOR when it is a KEYFRAME, an intra MOTION packet, the stream's first, or when its capture time is
more than half a frame off that grid (a gap: frames the camera dropped, a stall); so a decoder re-places and
re-times itself at every intra packet, exactly where it resynchronises its motion. A decoder joining a running
stream (`first_seq=None`) starts at its first anchor. Losing a mid-stretch anchor (after a gap) costs the
timestamps up to the next intra packet, not the motion.

Legacy packet (versions 1 and 2; every packet; big-endian):

| field        | size | meaning                                                          |
| ------------ | ---- | ---------------------------------------------------------------- |
| length       | 1–4  | LEB128 varint: bytes after this field, CRC included              |
| type_flags   | 1    | bits 0–1 type: 1 KEYFRAME, 2 MOTION; bit 2 INTRA; bit 3 REFRESH; bits 4–7 zero |
| seq          | 2    | frame number mod 65536 (a KEYFRAME applies from this frame on)   |
| timestamp_ms | 4    | capture time of the frame, ms mod 2³²                            |
| body         | n    | see below (with tags: the 8-byte tag ends the body)              |
| crc32        | 4    | zlib.crc32 of all preceding packet bytes, length included        |

MOTION body: qscale (1 byte, 0…47: every step × (8 + q mod 8)·2^(q div 8)/64, 24 → ×1) then the
range-coded levels of the 6 + 3K + P values [yaw, pitch, roll, t0…t2, exp kp-major,
face coefficients (expression channel, `facecodec.expression`)]
(constriction range coder, big-endian 32-bit words). In compact packets the qscale byte is there only
with the QSCALE bit, which every intra packet and every packet that changes the qscale sets (others use
the previous packet's, which the decoder holds whenever it can decode them at all), and the range-coded
payload is trimmed to the shortest bytes that decode to the same levels once zero-padded to a whole word
(`entropy.encode_levels(trim=True)`). Intra packets code levels of the
values, predicted packets levels of the residual against the previous reconstruction.
Each level is a signed bucket ±bitlength(|level|) (adaptive discrete-Laplace model) and,
from |bucket| ≥ 2 on, |bucket| − 1 uniform mantissa bits. Frame 0, every intra_interval-th
frame and frames after `Encoder.request_intra()` are intra; an intra packet resets all
prediction and model state, so it alone resynchronises a decoder.
KEYFRAME body: [expression channel: the source's face, `keyframe.encode_face`: has_face, N landmark points,
their canonical map and the source's expression code] codec (1 byte: 1 WebP, 2 JPEG, 3 AVIF: the field that
names the image codec; compact streams default to AVIF, legacy ones to WebP, `keyframe.default_codec`) then
the coded (H, W, 3) RGB source image.
A KEYFRAME after the first is a REFRESH: the receiver renders from it on. `RefreshPolicy` sends
one when the head has turned or moved too far from the current source for one picture to serve.

Rates (K = 15, 25 fps, synthetic talking-head motion, `synthetic.random_walk_motion`, default steps):
a predicted compact MOTION packet costs 5 bytes of framing (1.0 kbit/s) + its trimmed payload: ≈ 4.4 kbit/s in
all; `Encoder(target_kbps=...)` reaches ≈ 2…8 kbit/s (qscale 47…0). Legacy packets: 12 bytes of framing
(2.4 kbit/s) + qscale + whole words: ≈ 6.3 kbit/s, ≈ 4…10 kbit/s. Keyframes come on top: real 256² portraits
take 6–21 kB as WebP at the default quality 90 (39–43 dB PSNR), 3–10 kB at quality 75 (34–38 dB).
"""

from .decoder import DecodedFrame, Decoder
from .encoder import Encoder
from .errors import (BadMagicError, BitstreamError, ChecksumError, DropReason, FramingError, InvalidFieldError,
                     TruncatedError, UnsupportedVersionError)
from .header import StreamHeader
from .keyframe import ImageCodec, decode_keyframe, encode_keyframe
from .motion import Motion, split_batch, stack_batch
from .packet import Flags, ForgedError, Framing, Packet, PacketType, parse_packet, scan_packets
from .quant import DEFAULT_STEPS, PerField, qscale_factor
from .ratecontrol import RateController
from .refresh import RefreshPolicy
from .stats import StreamStats
from .stream import DecodedStream, decode_stream, read_stream, stream_bytes, write_stream

__all__ = [
    "BadMagicError", "BitstreamError", "ChecksumError", "DEFAULT_STEPS", "DecodedFrame", "DecodedStream",
    "Decoder", "DropReason", "Encoder", "Flags", "ForgedError", "Framing", "FramingError", "ImageCodec",
    "InvalidFieldError", "Motion", "Packet",
    "PacketType", "PerField", "RateController", "RefreshPolicy", "StreamHeader", "StreamStats", "TruncatedError",
    "UnsupportedVersionError", "decode_keyframe", "decode_stream", "encode_keyframe",
    "parse_packet", "qscale_factor", "read_stream", "scan_packets", "split_batch", "stack_batch", "stream_bytes",
    "write_stream",
]
