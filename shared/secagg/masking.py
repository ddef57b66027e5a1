"""The mask formula, in one place: y_u = x_u + PRG(b_u) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv).

Masks are applied chunk by chunk: every seed's keystream is generated a cache-sized piece at
a time straight into the running total, so no whole mask is ever allocated, and the total is
read and written once per chunk for all seeds. Since 2^field_bits divides 2^64, adding the raw
64-bit keystream words with uint64 wraparound and reducing once at the end is the same as
adding each `mask_from_seed(seed, ...)` mod 2^field_bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.prg import keystream_encryptor

CHUNK_ELEMENTS = 1 << 15  # 256 KiB of keystream and 256 KiB of total: both stay in L2


def pair_sign(owner: int, peer: int) -> int:
    """+1 if `owner` adds the pair mask shared with `peer`, −1 if it subtracts it."""
    return 1 if peer > owner else -1


def reduce_field(total: np.ndarray, field_bits: int) -> np.ndarray:
    """total mod 2^field_bits, in place."""
    total &= np.uint64(2**field_bits - 1)
    return total


def apply_masks(
    total: np.ndarray, signed_seeds: Iterable[tuple[bytes, int]], field_bits: int
) -> np.ndarray:
    """total ← total + Σ sign · PRG(seed) mod 2^field_bits, in place; returns `total`.

    `total` is a contiguous 1-D uint64 array; each sign is +1 or −1.
    """
    if total.dtype != np.uint64 or total.ndim != 1 or not total.flags.c_contiguous:
        raise SecureAggregationError("masks apply to a contiguous 1-D uint64 vector")
    streams = [
        (keystream_encryptor(seed), np.add if sign > 0 else np.subtract)
        for seed, sign in signed_seeds
    ]
    chunk_bytes = 8 * CHUNK_ELEMENTS
    buffer = np.empty(chunk_bytes + 16, dtype=np.uint8)  # update_into wants a block of headroom
    window, words = memoryview(buffer), buffer[:chunk_bytes].view("<u8")
    zeros = memoryview(bytes(chunk_bytes))
    for start in range(0, total.shape[0], CHUNK_ELEMENTS):
        part = total[start : start + CHUNK_ELEMENTS]
        size = part.shape[0]
        for encryptor, combine in streams:
            encryptor.update_into(zeros[: 8 * size], window)
            combine(part, words[:size], out=part)
    return reduce_field(total, field_bits)


def mask_encoded(
    encoded: np.ndarray,
    *,
    owner: int,
    self_seed: bytes,
    pair_seeds: Mapping[int, bytes],
    field_bits: int,
) -> np.ndarray:
    """The masked vector y_u of `owner`, computed in place in `encoded` (which it returns)."""
    signed = [(self_seed, +1)]
    signed += [(seed, pair_sign(owner, peer)) for peer, seed in pair_seeds.items()]
    return apply_masks(encoded, signed, field_bits)


def unmask_sum(
    masked_sum: np.ndarray,
    *,
    self_seeds: Iterable[bytes],
    dropped_pairs: Iterable[tuple[int, int, bytes]],
    field_bits: int,
) -> np.ndarray:
    """Σ x_u, in place in `masked_sum`: remove survivors' self-masks and the masks they share
    with dropped hospitals.

    `dropped_pairs` holds (survivor, dropped neighbour, that round's pair seed).
    """
    signed = [(seed, -1) for seed in self_seeds]
    signed += [(seed, -pair_sign(survivor, dropped)) for survivor, dropped, seed in dropped_pairs]
    return apply_masks(masked_sum, signed, field_bits)
