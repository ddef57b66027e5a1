"""The mask PRG: an AES-256-CTR keystream read as little-endian uint64 field elements."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from medfed.shared.errors import SecureAggregationError

SEED_BYTES = 32
ZERO_COUNTER = bytes(16)
CHUNK_BYTES = 1 << 16  # a cache-resident block of zeros to encrypt, chunk by chunk


def keystream_encryptor(key: bytes, initial_counter: bytes = ZERO_COUNTER) -> CipherContext:
    """An AES-256-CTR encryptor: encrypting zeros with it yields the keystream, in order."""
    if len(key) != SEED_BYTES:
        raise SecureAggregationError(f"mask seeds are {SEED_BYTES} bytes, got {len(key)}")
    return Cipher(algorithms.AES(key), modes.CTR(initial_counter)).encryptor()


def aes_ctr_keystream(key: bytes, initial_counter: bytes, num_bytes: int) -> np.ndarray:
    """`num_bytes` of AES-256-CTR keystream (the encryption of zeros), as a uint8 array."""
    encryptor = keystream_encryptor(key, initial_counter)
    if num_bytes < 0:
        raise SecureAggregationError(f"keystream length must be non-negative, got {num_bytes}")
    stream = np.empty(num_bytes + 16, dtype=np.uint8)  # update_into wants a block of headroom
    window, zeros = memoryview(stream), bytes(min(CHUNK_BYTES, num_bytes))
    for start in range(0, num_bytes, CHUNK_BYTES):
        size = min(CHUNK_BYTES, num_bytes - start)
        encryptor.update_into(zeros[:size], window[start : start + size + 15])
    return stream[:num_bytes]


def mask_from_seed(seed: bytes, length: int, field_bits: int) -> np.ndarray:
    """`length` uniform elements of Z / 2^field_bits expanded from a 32-byte seed.

    Every seed drives one mask only (fresh self-mask seeds, per-round pair seeds), so the
    counter always starts at zero.
    """
    words = aes_ctr_keystream(seed, ZERO_COUNTER, 8 * length).view("<u8")
    words &= np.uint64(2**field_bits - 1)
    return words.astype(np.uint64, copy=False)
