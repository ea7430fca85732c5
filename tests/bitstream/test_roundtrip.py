import dataclasses
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from facecodec.bitstream import (Decoder, Flags, Motion, PacketType, PerField, StreamHeader, decode_stream,
                                 scan_packets)
from facecodec.bitstream.quant import qscale_factor


def _vectors(frames) -> np.ndarray:
    return np.stack([frame.motion.to_vector() for frame in frames])


def _decode_chunks(header, chunks, **kwargs):
    decoder = Decoder(header, **kwargs)
    frames = [frame for chunk in chunks for frame in decoder.push(chunk)] + decoder.flush()
    return frames, decoder


def _assert_within_half_step(original: np.ndarray, decoded: np.ndarray, step: np.ndarray) -> None:
    """|x − x̂| ≤ step/2, plus the float32 rounding of x̂."""
    tolerance = step / 2 * (1 + 1e-9) + np.spacing(np.abs(original).astype(np.float32))
    assert np.all(np.abs(original.astype(np.float64) - decoded) <= tolerance)


def test_decoder_reproduces_the_encoder_reconstruction_exactly(header, motions, encode_frames):
    chunks, expected = encode_frames(header, motions)
    frames, decoder = _decode_chunks(header, chunks)
    assert [f.seq for f in frames] == list(range(500)) and not any(f.concealed for f in frames)
    np.testing.assert_array_equal(_vectors(frames), expected)
    assert [f.timestamp_ms for f in frames[:3]] == [0, 40, 80] and not decoder.drops


def test_no_drift_over_500_predicted_frames(motions, encode_frames):
    header = StreamHeader(intra_interval=1000)  # one intra frame, then 499 predicted ones
    chunks, expected = encode_frames(header, motions)
    frames, decoder = _decode_chunks(header, chunks)
    assert decoder.stats.intra_frames == 1 and decoder.stats.predicted_frames == 499
    original = np.stack([m.to_vector() for m in motions])
    np.testing.assert_array_equal(_vectors(frames), expected)
    _assert_within_half_step(original, _vectors(frames), header.steps.expand(15))


def test_intra_only_stream_is_within_half_a_step(motions, encode_frames):
    header = StreamHeader(intra_interval=1)
    chunks, expected = encode_frames(header, motions[:100])
    frames, decoder = _decode_chunks(header, chunks)
    assert decoder.stats.intra_frames == 100
    np.testing.assert_array_equal(_vectors(frames), expected)
    _assert_within_half_step(np.stack([m.to_vector() for m in motions[:100]]), _vectors(frames),
                             header.steps.expand(15))


def test_encoding_is_bit_exact_across_runs_and_matches_the_golden_crc(send_stream):
    header = StreamHeader(num_kp=4)
    n = np.arange(60)[:, None]
    vectors = np.concatenate([20 * np.sin(n / 9 + np.arange(3)), 0.1 * np.cos(n / 7 + np.arange(15))], axis=1)
    motions = [Motion.from_vector(v, 4) for v in vectors.round(4)]
    first, second = send_stream(header, motions), send_stream(header, motions)
    assert first == second
    assert (len(first), zlib.crc32(first)) == (GOLDEN_SIZE, GOLDEN_CRC)  # changes only with the format
    legacy = send_stream(dataclasses.replace(header, compact=False), motions)  # versions 1 and 2 are still written
    assert (len(legacy), zlib.crc32(legacy)) == (LEGACY_SIZE, LEGACY_CRC)
    np.testing.assert_array_equal(_vectors(decode_stream(legacy).frames), _vectors(decode_stream(first).frames))


GOLDEN_SIZE, GOLDEN_CRC = 930, 2384827459  # K = 4, 60 frames, no keyframe, compact packets (version 3)
LEGACY_SIZE, LEGACY_CRC = 1563, 513446677  # the same stream in legacy packets (version 1), pinned before version 3


@st.composite
def _sequences(draw):
    num_kp = draw(st.integers(1, 20))
    steps = PerField(draw(st.floats(0.01, 2.0)), draw(st.floats(1e-4, 0.05)), draw(st.floats(1e-4, 0.05)))
    header = StreamHeader(num_kp=num_kp, steps=steps, intra_interval=draw(st.integers(1, 30)))
    seed, length = draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 60))
    rng = np.random.default_rng(seed)
    scale = np.concatenate([[30.0] * 3, [0.2] * 3, [0.1] * 3 * num_kp]) * draw(st.floats(0.01, 1.0))
    walk = np.cumsum(rng.normal(size=(length, 6 + 3 * num_kp)), axis=0) * scale / np.sqrt(length)
    target = draw(st.one_of(st.none(), st.floats(1.0, 50.0)))
    return header, [Motion.from_vector(v, num_kp) for v in walk], target


@settings(max_examples=60, deadline=None)
@given(_sequences())
def test_property_round_trip_is_exact_and_within_half_a_step(send_stream, case):
    header, motions, target_kbps = case
    data = send_stream(header, motions, target_kbps=target_kbps)
    decoded = decode_stream(data)
    assert len(decoded.frames) == len(motions) and not any(f.concealed for f in decoded.frames)
    again = send_stream(header, motions, target_kbps=target_kbps)
    assert again == data
    qscales = []  # a compact packet carries its qscale when intra or changed; others keep the last one
    for p in scan_packets(data[len(header.to_bytes()):], header.framing):
        if p.type == PacketType.MOTION:
            qscales.append(p.body[0] if Flags.QSCALE in p.flags else qscales[-1])
    step = header.steps.expand(header.num_kp) * np.array([qscale_factor(q) for q in qscales])[:, None]
    _assert_within_half_step(np.stack([m.to_vector() for m in motions]), _vectors(decoded.frames), step)


def test_fixed_qscale_error_is_within_half_its_step(header, motions, encode_frames):
    for qscale in (0, 31, 47):
        chunks, _ = encode_frames(header, motions[:100], qscale=qscale)
        frames, _ = _decode_chunks(header, chunks)
        step = header.steps.expand(15) * qscale_factor(qscale)
        _assert_within_half_step(np.stack([m.to_vector() for m in motions[:100]]), _vectors(frames), step)


def test_steps_from_the_header_drive_dequantisation(motions, encode_frames):
    fine = StreamHeader(steps=PerField(0.1, 0.001, 0.001))
    coarse = dataclasses.replace(fine, steps=PerField(2.0, 0.02, 0.02))
    sizes = [sum(map(len, encode_frames(h, motions[:100])[0])) for h in (fine, coarse)]
    assert sizes[0] > 1.5 * sizes[1]
