"""Streams with the expression channel (header version 2): the `face` coefficients and the source
face round-trip, version-1 streams are unchanged, and damaged or forged packets never raise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facecodec.bitstream import (Decoder, Encoder, Motion, PacketType, StreamHeader, decode_stream, scan_packets,
                                 split_batch)
from facecodec.bitstream.errors import InvalidFieldError
from facecodec.bitstream.keyframe import decode_face, encode_face
from facecodec.bitstream.motion import stack_faces
from facecodec.bitstream.synthetic import random_walk_motion
from facecodec.expression import SOURCE_POINTS, SourceFace

P = 12
HEADER = StreamHeader(face_basis=0x406B7718, num_face=P)


@pytest.fixture(scope="module")
def face_motions() -> list[Motion]:
    return random_walk_motion(300, 15, seed=3, num_face=P)


@pytest.fixture(scope="module")
def source_face() -> SourceFace:
    rng = np.random.default_rng(0)
    points = rng.uniform(-3.0, 259.0, (len(SOURCE_POINTS), 2))
    return SourceFace(points, rng.normal(size=(2, 3)) * 60, rng.normal(size=P) * 0.3)


def _encode(motions, image, face, header=HEADER):
    encoder = Encoder(header)
    encoder.request_keyframe(image, face)
    chunks, expected = [], []
    for n, motion in enumerate(motions):
        chunks.append(encoder.encode(motion, round(n * header.frame_ms)))
        expected.append(encoder.reconstruction.to_vector())
    return chunks, np.stack(expected)


def test_header_version_2_round_trips_and_version_1_is_unchanged():
    assert HEADER.to_bytes()[4] == 3 and dataclasses.replace(HEADER, compact=False).to_bytes()[4] == 2
    data = dataclasses.replace(HEADER, compact=False).to_bytes()
    parsed, used = StreamHeader.parse(data + b"rest")
    assert parsed == dataclasses.replace(HEADER, compact=False) and used == len(data)
    plain = StreamHeader(compact=False)
    assert plain.to_bytes()[4] == 1 and len(plain.to_bytes()) == len(data) - 14  # + features, basis, P, step
    assert StreamHeader.parse(plain.to_bytes())[0].num_face == 0
    with pytest.raises(InvalidFieldError, match="face_basis"):
        StreamHeader(face_basis=7)  # a basis without coefficients
    with pytest.raises(InvalidFieldError, match="face_basis"):
        StreamHeader(num_face=4)  # coefficients without a basis


def test_motion_vector_carries_the_coefficients():
    face = np.linspace(-0.5, 0.5, P, dtype=np.float32)
    motion = Motion(1.0, 2.0, 3.0, np.zeros(3), np.ones((15, 3)), face)
    vector = motion.to_vector()
    assert vector.shape == (6 + 45 + P,) and np.array_equal(vector[-P:], face)
    back = Motion.from_vector(vector, 15, P)
    assert back.num_face == P and np.array_equal(back.face, face)
    assert Motion.neutral(15).num_face == 0 and Motion.neutral(15, P).face.shape == (P,)
    batch = split_batch(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros((2, 3)), np.zeros((2, 15, 3)), np.ones((2, P)))
    assert stack_faces(batch).shape == (2, P)
    with pytest.raises(ValueError, match="P=3"):
        Motion.from_vector(vector, 15, 3)


def test_stream_round_trip_within_half_a_step(face_motions, smooth_image, source_face):
    chunks, expected = _encode(face_motions, smooth_image, source_face)
    stream = decode_stream(HEADER.to_bytes() + b"".join(chunks))
    assert stream.header == HEADER and not stream.drops and len(stream.frames) == len(face_motions)
    decoded = np.stack([f.motion.to_vector() for f in stream.frames])
    np.testing.assert_array_equal(decoded, expected)
    original = stack_faces(face_motions)
    assert np.abs(stack_faces([f.motion for f in stream.frames]) - original).max() <= HEADER.steps.face / 2 + 1e-6
    first = stream.frames[0]
    assert first.keyframe is not None and first.face is not None
    assert np.abs(first.face.points - source_face.points).max() <= 1 / 32 + 1e-6
    np.testing.assert_allclose(first.face.to_image, source_face.to_image, rtol=1e-6)
    np.testing.assert_allclose(first.face.code, source_face.code, atol=HEADER.steps.face / 2 + 1e-6)  # on the grid
    # the expression channel's rate: a few hundred bit/s on top of the motion
    plain_chunks, _ = _encode([dataclasses.replace(m, face=np.zeros(0)) for m in face_motions], smooth_image, None,
                              StreamHeader())
    extra = (sum(map(len, chunks)) - sum(map(len, plain_chunks))) * 8 / (len(chunks) / 25) / 1000
    assert 0.1 < extra < 2.0, extra


def test_a_keyframe_without_a_face(face_motions, smooth_image):
    chunks, _ = _encode(face_motions[:3], smooth_image, None)
    frames = decode_stream(HEADER.to_bytes() + b"".join(chunks)).frames
    assert frames[0].keyframe is not None and frames[0].face is None


def test_encoder_refuses_mismatched_coefficients_and_faces(face_motions, smooth_image, source_face):
    with pytest.raises(ValueError, match="P=12"):
        Encoder(HEADER).encode(dataclasses.replace(face_motions[0], face=np.zeros(3)), 0)
    with pytest.raises(ValueError, match="expression channel"):
        Encoder(StreamHeader()).request_keyframe(smooth_image, source_face)
    with pytest.raises(ValueError, match="expression channel"):
        Encoder(StreamHeader(face_basis=1, num_face=3)).request_keyframe(smooth_image, source_face)


def test_face_section_rejects_bad_values(source_face):
    body = encode_face(source_face)
    assert decode_face(body + b"img", 256, 256, P)[1] == b"img"
    with pytest.raises(InvalidFieldError, match="has_face"):
        decode_face(b"\x07" + body[1:], 256, 256, P)
    with pytest.raises(InvalidFieldError, match="needs"):
        decode_face(body[:40], 256, 256, P)
    far = bytearray(body)
    far[1:3] = (30000).to_bytes(2, "big")  # 1875 px: outside a 256² picture's range
    with pytest.raises(InvalidFieldError, match="range"):
        decode_face(bytes(far), 256, 256, P)
    for bad in (np.nan, 1e30):
        code = bytearray(body)
        code[-4:] = np.array([bad], ">f4").tobytes()
        with pytest.raises(InvalidFieldError, match="range"):
            decode_face(bytes(code), 256, 256, P)


def test_fuzz_damaged_and_forged_packets_never_raise(face_motions, smooth_image, source_face):
    chunks, expected = _encode(face_motions, smooth_image, source_face)
    rng = np.random.default_rng(11)
    for trial in range(20):
        pushes = []
        for n, chunk in enumerate(chunks[:250]):
            kind = rng.integers(5)
            if kind == 0:  # bit flips (CRC catches them)
                data = np.frombuffer(chunk, np.uint8).copy()
                data[rng.integers(len(data), size=3)] ^= 1 << rng.integers(8)
                pushes.append(data.tobytes())
            elif kind == 1:  # forged body with a valid CRC
                packets = []
                for packet in scan_packets(chunk, HEADER.framing):
                    body = bytearray(packet.body)
                    if body:
                        body[rng.integers(len(body))] = rng.integers(256)
                    packets.append(HEADER.framing.frame(dataclasses.replace(packet, body=bytes(body))))
                pushes.append(b"".join(packets))
            elif kind == 2:  # lost
                continue
            else:
                pushes.append(chunk)
        decoder = Decoder(HEADER, reorder_window=trial % 3)
        frames = [f for data in pushes + chunks[250:] for f in decoder.push(data)] + decoder.flush()
        assert [f.seq for f in frames] == list(range(len(chunks)))
        decoded = np.stack([f.motion.to_vector() for f in frames])
        assert np.isfinite(decoded).all()
        np.testing.assert_array_equal(decoded[250:], expected[250:])  # frame 250 is intra
        for f in frames:
            if f.face is not None:
                assert np.isfinite(f.face.points).all() and np.abs(f.face.points).max() <= 512
    keyframe = next(p for p in scan_packets(chunks[0], HEADER.framing) if p.type == PacketType.KEYFRAME)
    assert keyframe.body[0] == 1  # the face section leads the body
