"""Damaged, lost, duplicated and reordered packets: the decoder never raises, emits exactly one
frame per frame number, never emits a wrong frame unmarked, and resynchronises at the next intra."""

import dataclasses

import numpy as np
import pytest

from facecodec.bitstream import Decoder, Flags, Packet, PacketType, decode_keyframe, scan_packets

FRAMES, MUTATED, INTRA_AFTER_MUTATIONS = 300, 250, 250  # intra_interval 25: frame 250 is intra


@pytest.fixture(scope="module")
def clean(header, motions, encode_frames, smooth_image):
    """Loss-free chunks, their reconstructions and the decoded source image."""
    chunks, expected = encode_frames(header, motions[:FRAMES], source_image=smooth_image)
    keyframe = next(p for p in scan_packets(chunks[0], header.framing) if p.type == PacketType.KEYFRAME)
    return chunks, expected, decode_keyframe(keyframe.body, header.height, header.width)


def _transport_damage(rng: np.random.Generator, chunks: list[bytes]) -> tuple[list[bytes], int]:
    """Pushes for chunks[:MUTATED] with one random mutation each; returns (pushes, mutation count)."""
    pushes, chunks, mutations = [], list(chunks), 0
    for n in range(MUTATED):
        data, kind = chunks[n], rng.integers(8)
        mutations += kind != 0
        if kind == 1:  # bit flips
            flipped = np.frombuffer(data, np.uint8).copy()
            flipped[rng.integers(len(data), size=rng.integers(1, 4))] ^= 1 << rng.integers(8)
            pushes.append(flipped.tobytes())
        elif kind == 2:  # truncation
            pushes.append(data[: rng.integers(len(data))])
        elif kind == 3:  # random bytes instead of the packet
            pushes.append(rng.bytes(int(rng.integers(0, 64))))
        elif kind == 4:  # duplicated, now and a bit later
            pushes += [data, data]
            chunks[min(n + int(rng.integers(1, 4)), MUTATED - 1)] += data
        elif kind == 5 and n + 1 < MUTATED:  # reordered with the next packet
            chunks[n + 1], pushes = data, pushes + [chunks[n + 1]]
        elif kind == 6:  # junk glued in front
            pushes.append(rng.bytes(int(rng.integers(1, 32))) + data)
        elif kind != 7:  # 7: dropped
            pushes.append(data)
    return pushes + chunks[MUTATED:], mutations


def _decode(header, pushes, reorder_window):
    decoder = Decoder(header, reorder_window=reorder_window)
    return [frame for data in pushes for frame in decoder.push(data)] + decoder.flush()


def test_fuzz_transport_damage_never_raises_and_never_lies(header, clean):
    chunks, expected, source = clean
    rng, total = np.random.default_rng(2024), 0
    for trial in range(46):
        pushes, mutations = _transport_damage(rng, chunks)
        total += mutations
        frames = _decode(header, pushes, reorder_window=trial % 3)
        assert [f.seq for f in frames] == list(range(FRAMES))
        decoded = np.stack([f.motion.to_vector() for f in frames])
        good = ~np.array([f.concealed for f in frames])
        np.testing.assert_array_equal(decoded[good], expected[good])  # unconcealed frames are exact
        assert good[INTRA_AFTER_MUTATIONS:].all()  # resynchronised at the first intra after the damage
        assert all(np.array_equal(f.keyframe, source) for f in frames if f.keyframe is not None)
    assert total >= 10_000


def _forged(rng: np.random.Generator, packet: Packet, header) -> bytes:
    """The packet with random body bytes or type/flags but a VALID CRC (a buggy or hostile sender)."""
    body = bytearray(packet.body)
    for _ in range(int(rng.integers(1, 4))):
        if body:
            body[rng.integers(len(body))] = rng.integers(256)
    if rng.random() < 0.3:
        body = bytearray(rng.bytes(int(rng.integers(0, 40))))
    flags = Flags(int(rng.choice([0, 4, 8, 12])))
    kind = PacketType(int(rng.choice([1, 2]))) if rng.random() < 0.2 else packet.type
    return header.framing.frame(dataclasses.replace(packet, type=kind, flags=flags, body=bytes(body)))


def test_fuzz_forged_packets_with_valid_crc_never_raise(header, clean):
    chunks, expected, _ = clean
    rng = np.random.default_rng(7)
    for trial in range(10):
        pushes = [b"".join(_forged(rng, p, header) for p in scan_packets(c, header.framing)) for c in chunks[:MUTATED]]
        frames = _decode(header, pushes + chunks[MUTATED:], reorder_window=trial % 2)
        assert [f.seq for f in frames] == list(range(FRAMES))
        decoded = np.stack([f.motion.to_vector() for f in frames[INTRA_AFTER_MUTATIONS:]])
        np.testing.assert_array_equal(decoded, expected[INTRA_AFTER_MUTATIONS:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_five_percent_loss_conceals_until_the_next_intra_then_matches_exactly(header, motions, encode_frames, seed):
    chunks, expected = encode_frames(header, motions)
    lost = np.random.default_rng(seed).random(len(chunks)) < 0.05
    decoder = Decoder(header)
    frames = [f for chunk, gone in zip(chunks, lost) if not gone for f in decoder.push(chunk)]
    frames += decoder.flush(end_seq=len(chunks))
    assert [f.seq for f in frames] == list(range(500)) and 10 < lost.sum() < 45
    synced, should_conceal = False, []
    for n, gone in enumerate(lost):  # the decoder's contract, frame by frame
        synced = not gone and (n % header.intra_interval == 0 or synced)
        should_conceal.append(not synced)
    assert [f.concealed for f in frames] == should_conceal
    decoded = np.stack([f.motion.to_vector() for f in frames])
    good = ~np.array(should_conceal)
    np.testing.assert_array_equal(decoded[good], expected[good])
