import numpy as np
import pytest
from scipy import stats

from medfed.client.randomness import SecureRandom

# RFC 8439, appendix A.1, test vector #1: ChaCha20 block of the all-zero key, nonce and counter
RFC8439_ZERO_BLOCK = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)
N = 200_000


def _stream(*parts):
    return SecureRandom.from_seed("test_randomness", *parts)


def test_keystream_is_rfc8439_chacha20():
    assert SecureRandom(bytes(32)).random_bytes(64) == RFC8439_ZERO_BLOCK


def test_uniform_is_the_top_53_bits_of_each_little_endian_word():
    words = [int.from_bytes(RFC8439_ZERO_BLOCK[i : i + 8], "little") for i in range(0, 64, 8)]
    expected = [(w >> 11) / 2**53 for w in words]
    assert SecureRandom(bytes(32)).uniform(8).tolist() == expected


def test_same_key_gives_the_same_stream_and_draws_continue_it():
    key = bytes(range(32))
    whole = SecureRandom(key).uniform(10)
    parts = SecureRandom(key)
    assert np.array_equal(np.concatenate([parts.uniform(3), parts.uniform(7)]), whole)


@pytest.mark.parametrize("byte", range(4, 32))
def test_keys_differing_only_above_the_low_32_bits_give_different_streams(byte):
    key = bytearray(32)
    key[byte] = 1
    assert SecureRandom(bytes(key)).random_bytes(64) != RFC8439_ZERO_BLOCK


def test_seed_parts_are_typed_and_delimited():
    streams = [_stream(1, 2), _stream("1", 2), _stream(12), _stream("1", "2"), _stream(1, 2, "")]
    draws = [s.random_bytes(32) for s in streams]
    assert len(set(draws)) == len(draws)
    assert _stream(1, 2).random_bytes(32) == draws[0]
    with pytest.raises(TypeError):
        SecureRandom.from_seed(True)


def test_fresh_streams_differ():
    assert SecureRandom.fresh().random_bytes(32) != SecureRandom.fresh().random_bytes(32)


def test_key_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        SecureRandom(bytes(16))


def test_uniform_is_uniform_on_the_open_interval():
    values = _stream("uniform").uniform(N)
    assert values.dtype == np.float64 and 0.0 < values.min() and values.max() < 1.0
    assert stats.kstest(values, "uniform").pvalue > 1e-3


def test_a_zero_draw_is_redrawn():
    class ZeroFirst(SecureRandom):
        calls = 0

        def random_bytes(self, count):
            self.calls += 1
            return bytes(count) if self.calls == 1 else super().random_bytes(count)

    values = ZeroFirst(bytes(32)).uniform(4)
    assert (values > 0).all() and values.shape == (4,)


def test_standard_normal_is_normal():
    values = _stream("normal").standard_normal(N)
    assert stats.kstest(values, "norm").pvalue > 1e-3
    assert abs(values.mean()) < 5 / np.sqrt(N)
    assert values.std() == pytest.approx(1.0, abs=5 / np.sqrt(2 * N))


def test_standard_normal_keeps_odd_sizes_and_shapes():
    assert _stream("odd").standard_normal(7).shape == (7,)
    assert _stream("odd").standard_normal((3, 5)).shape == (3, 5)


def test_gaussian_has_the_requested_std():
    values = _stream("gaussian").gaussian((400, 500), 2.5)
    assert values.shape == (400, 500)
    assert stats.kstest(values.ravel(), stats.norm(scale=2.5).cdf).pvalue > 1e-3
    assert values.std() == pytest.approx(2.5, rel=5 / np.sqrt(2 * values.size))
    assert not _stream("zero").gaussian(10, 0.0).any()


def test_gaussian_refuses_negative_std():
    with pytest.raises(ValueError, match="std"):
        _stream().gaussian(3, -1.0)


@pytest.mark.parametrize("p", [0.03, 0.3, 0.5])
def test_bernoulli_rate(p):
    draws = _stream("bernoulli", str(p)).bernoulli(N, p)
    assert draws.dtype == np.bool_
    assert draws.mean() == pytest.approx(p, abs=5 * np.sqrt(p * (1 - p) / N))


def test_bernoulli_edges_and_bad_rates():
    assert not _stream().bernoulli(100, 0.0).any() and _stream().bernoulli(100, 1.0).all()
    with pytest.raises(ValueError, match="p must be"):
        _stream().bernoulli(3, 1.5)
