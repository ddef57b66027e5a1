"""The mask PRG is AES-256-CTR: known-answer vectors and an independent ECB computation."""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from medfed.shared.secagg.prg import aes_ctr_keystream, mask_from_seed

# NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt: output blocks = the keystream.
NIST_KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
NIST_COUNTER = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
NIST_OUTPUT_BLOCKS = bytes.fromhex(
    "0bdf7df1591716335e9a8b15c860c5025a6e699d536119065433863c8f657b94"
)
NIST_PLAINTEXT = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
NIST_CIPHERTEXT = bytes.fromhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5")


def ecb_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def test_keystream_matches_nist_sp800_38a_ctr_aes256_vector() -> None:
    stream = aes_ctr_keystream(NIST_KEY, NIST_COUNTER, 32).tobytes()
    assert stream == NIST_OUTPUT_BLOCKS
    assert bytes(p ^ s for p, s in zip(NIST_PLAINTEXT, stream, strict=True)) == NIST_CIPHERTEXT


def test_mask_blocks_are_aes_ecb_encryptions_of_the_counter_from_zero() -> None:
    seed = os.urandom(32)
    mask = mask_from_seed(seed, 4, field_bits=64 - 2)
    blocks = ecb_block(seed, bytes(16)) + ecb_block(seed, (1).to_bytes(16, "big"))
    expected = [int.from_bytes(blocks[i : i + 8], "little") % 2**62 for i in range(0, 32, 8)]
    assert mask.tolist() == expected


def test_mask_elements_lie_in_the_field_and_depend_on_the_seed() -> None:
    first = mask_from_seed(os.urandom(32), 10_000, field_bits=20)
    second = mask_from_seed(os.urandom(32), 10_000, field_bits=20)
    assert first.dtype == np.uint64 and first.shape == (10_000,)
    assert int(first.max()) < 2**20 and int(second.max()) < 2**20
    assert not np.array_equal(first, second)


def test_same_seed_gives_the_same_mask_of_any_prefix_length() -> None:
    seed = os.urandom(32)
    assert np.array_equal(mask_from_seed(seed, 1_000, 62)[:10], mask_from_seed(seed, 10, 62))


def test_keystream_across_chunk_boundaries_equals_one_shot_ctr_encryption() -> None:
    key, counter = os.urandom(32), os.urandom(16)
    length = 3 * (1 << 16) + 40
    one_shot = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor().update(bytes(length))
    assert aes_ctr_keystream(key, counter, length).tobytes() == one_shot
