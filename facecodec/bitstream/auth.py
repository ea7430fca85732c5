"""Per-call packet authentication: a truncated HMAC-SHA256 tag on every packet.

With a key shared by the call's two ends (out of band, like the call's signalling), nobody else can
inject, alter or replay the call's packets: the tag covers the packet's type, flags, timestamp and
body and the frame number it claims, unwrapped to 64 bits, so a packet replayed after the 16-bit
sequence number has wrapped (43 min at 25 fps) no longer verifies. A stream says in its header
(`StreamHeader.authenticated`) that its packets carry tags; the decoder drops (and counts,
`DropReason.FORGED`) any packet whose tag does not verify. In legacy streams (versions 1 and 2) the CRC still frames
packets: it finds damage, the tag finds forgery. In compact streams (version 3) the tag replaces the CRC.

Legacy tag: the first 8 bytes of HMAC-SHA256(key, seq (8 bytes, big-endian) ‖ type_flags ‖ timestamp_ms (4) ‖
body), appended to the body. Compact tag: the first 8 bytes of HMAC-SHA256(key, seq (8 bytes, big-endian) ‖ the
packet's bytes from its length field to the end of its body), in place of the CRC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from .packet import TAG_BYTES, Packet

KEY_BYTES = 32
_COVERED = struct.Struct(">QBI")  # unwrapped seq, type_flags, timestamp_ms
_SEQ = struct.Struct(">Q")


def new_key() -> bytes:
    """A fresh random per-call key."""
    return secrets.token_bytes(KEY_BYTES)


def check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ValueError(f"a packet key must be at least 16 bytes (got {len(key) if key else 0})")
    return bytes(key)


def _tag(key: bytes, packet: Packet, seq: int, body: bytes) -> bytes:
    covered = _COVERED.pack(seq % (1 << 64), int(packet.type) | int(packet.flags), packet.timestamp_ms) + body
    return hmac.new(key, covered, hashlib.sha256).digest()[:TAG_BYTES]


def compact_tag(key: bytes, seq: int, covered: bytes) -> bytes:
    """The tag of a compact packet of frame `seq` (unwrapped) whose bytes before the tag are `covered`."""
    return hmac.new(key, _SEQ.pack(seq % (1 << 64)) + bytes(covered), hashlib.sha256).digest()[:TAG_BYTES]


def seal(packet: Packet, key: bytes, seq: int) -> Packet:
    """The packet with its tag appended to the body; `seq` is its unwrapped frame number."""
    return Packet(packet.type, packet.seq, packet.timestamp_ms, packet.flags,
                  packet.body + _tag(key, packet, seq, packet.body))


def unseal(packet: Packet, key: bytes, seq: int) -> Packet | None:
    """The packet without its tag if the tag verifies for frame `seq`, else None."""
    if len(packet.body) < TAG_BYTES:
        return None
    body, tag = packet.body[:-TAG_BYTES], packet.body[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, packet, seq, body)):
        return None
    return Packet(packet.type, packet.seq, packet.timestamp_ms, packet.flags, body)


def read_key(path) -> bytes:
    """A packet key from a file: 64 hex digits (what `write_key` writes) or 32 raw bytes."""
    from pathlib import Path

    data = Path(path).read_bytes()
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = data
    return check_key(key)


def write_key(path, key: bytes | None = None) -> bytes:
    """Write a (new) key as hex to `path`, readable by its owner only; returns the key."""
    import os

    key = check_key(key or new_key())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def add_key_argument(parser) -> None:
    """`--key-file F` on a command that writes or reads a stream."""
    parser.add_argument("--key-file", type=str, metavar="F",
                        help="authenticate every packet with the call's key in F (64 hex digits; "
                        "`facecodec keygen F` writes one): strangers cannot inject, alter or replay packets")
