"""Masks applied chunk by chunk equal the PRG's masks added one by one, mod 2^field_bits."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.masking import CHUNK_ELEMENTS, apply_masks


def keystream_words(seed: bytes, length: int) -> list[int]:
    """The mask's elements from one-shot AES-256-CTR (counter 0), as Python ints."""
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(8 * length))
    return [int.from_bytes(stream[i : i + 8], "little") for i in range(0, 8 * length, 8)]


@pytest.mark.parametrize("length", [1, 7, CHUNK_ELEMENTS, 2 * CHUNK_ELEMENTS + 3])
@pytest.mark.parametrize("field_bits", [20, 62])
def test_chunked_masks_equal_each_mask_added_in_python_integers(length, field_bits):
    rng = np.random.default_rng(length + field_bits)
    start = rng.integers(0, 2**field_bits, size=length, dtype=np.uint64)
    signed = [(os.urandom(32), sign) for sign in (+1, -1, -1, +1, +1)]
    modulus = 2**field_bits
    expected = [int(x) for x in start]
    for seed, sign in signed:
        words = keystream_words(seed, length)
        expected = [(e + sign * w) % modulus for e, w in zip(expected, words, strict=True)]
    total = start.copy()
    assert apply_masks(total, signed, field_bits) is total  # in place
    assert total.tolist() == expected


def test_adding_then_removing_the_same_masks_restores_the_vector():
    values = np.arange(3 * CHUNK_ELEMENTS + 11, dtype=np.uint64)
    seeds = [os.urandom(32) for _ in range(4)]
    masked = apply_masks(values.copy(), [(seed, +1) for seed in seeds], 62)
    assert not np.array_equal(masked, values)
    assert np.array_equal(apply_masks(masked, [(seed, -1) for seed in seeds], 62), values)


@pytest.mark.parametrize(
    "total",
    [np.zeros(4, dtype=np.int64), np.zeros((2, 2), dtype=np.uint64), np.zeros(8, np.uint64)[::2]],
)
def test_masks_apply_only_to_a_contiguous_uint64_vector(total):
    with pytest.raises(SecureAggregationError, match="contiguous 1-D uint64"):
        apply_masks(total, [(os.urandom(32), 1)], 62)


def test_a_seed_of_the_wrong_length_is_refused():
    with pytest.raises(SecureAggregationError, match="32 bytes"):
        apply_masks(np.zeros(3, dtype=np.uint64), [(b"short", 1)], 62)
