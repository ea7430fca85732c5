import numpy as np
import pytest

from facecodec.bitstream import BitstreamError
from facecodec.bitstream.entropy import NUM_CLASSES, _MEANS, _split, class_of, decode_levels, encode_levels


@pytest.mark.parametrize("count", [0, 1, 7, 51, 300])
def test_levels_round_trip_including_extremes(count):
    rng = np.random.default_rng(count)
    levels = np.rint(rng.laplace(scale=4.0, size=count)).astype(np.int64)
    levels[: min(count, 4)] = [2**24 - 1, -(2**24 - 1), 2, -3][: min(count, 4)]
    classes = rng.integers(0, NUM_CLASSES, count)
    data = encode_levels(levels, classes)
    assert len(data) % 4 == 0
    np.testing.assert_array_equal(decode_levels(data, classes), levels)


def test_bucket_split_is_sign_times_bit_length():
    symbols, mantissas, sizes = _split(np.array([0, 1, -1, 2, 3, -4, 7, 8]))
    np.testing.assert_array_equal(symbols - 24, [0, 1, -1, 2, 2, -3, 3, 4])
    np.testing.assert_array_equal(mantissas, [0, 1, 0, 3, 0])
    np.testing.assert_array_equal(sizes, [2, 2, 4, 4, 8])


def test_class_means_are_quarter_octaves_and_class_of_picks_the_nearest():
    np.testing.assert_allclose(_MEANS[1:] / _MEANS[:-1], 2**0.25, rtol=1e-12)
    assert _MEANS[0] == 1 / 16 and _MEANS[4] == 1 / 8
    np.testing.assert_array_equal(class_of(np.array([0.0, 1 / 16, 1.0, 1e9])), [0, 0, 16, NUM_CLASSES - 1])


def test_well_matched_model_codes_close_to_the_entropy():
    rng = np.random.default_rng(3)
    levels = np.rint(rng.laplace(scale=1.0, size=5000)).astype(np.int64)
    values, counts = np.unique(levels, return_counts=True)
    entropy_bits = -(counts * np.log2(counts / counts.sum())).sum()
    coded_bits = 8 * len(encode_levels(levels, class_of(np.full(5000, np.abs(levels).mean()))))
    assert entropy_bits < coded_bits < 1.03 * entropy_bits


def test_undecodable_payload_is_a_bitstream_error():
    with pytest.raises(BitstreamError, match="whole 32-bit words"):
        decode_levels(b"\x01\x02\x03", np.zeros(3, np.int64))
