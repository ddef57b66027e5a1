"""The mask formula, in one place: y_u = x_u + PRG(b_u) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from medfed.shared.secagg.prg import mask_from_seed


def pair_sign(owner: int, peer: int) -> int:
    """+1 if `owner` adds the pair mask shared with `peer`, −1 if it subtracts it."""
    return 1 if peer > owner else -1


def apply_mask(total: np.ndarray, seed: bytes, sign: int, field_bits: int) -> None:
    """total ← total ± PRG(seed) in place (uint64 wraparound; reduce with the field mask)."""
    mask = mask_from_seed(seed, total.shape[0], field_bits)
    if sign > 0:
        total += mask
    else:
        total -= mask


def reduce_field(total: np.ndarray, field_bits: int) -> np.ndarray:
    """total mod 2^field_bits, in place."""
    total &= np.uint64(2**field_bits - 1)
    return total


def mask_encoded(
    encoded: np.ndarray,
    *,
    owner: int,
    self_seed: bytes,
    pair_seeds: Mapping[int, bytes],
    field_bits: int,
) -> np.ndarray:
    """The masked vector y_u of `owner` from its encoded update and this round's seeds."""
    total = np.array(encoded, dtype=np.uint64, copy=True)
    apply_mask(total, self_seed, +1, field_bits)
    for peer, seed in pair_seeds.items():
        apply_mask(total, seed, pair_sign(owner, peer), field_bits)
    return reduce_field(total, field_bits)


def unmask_sum(
    masked_sum: np.ndarray,
    *,
    self_seeds: Iterable[bytes],
    dropped_pairs: Iterable[tuple[int, int, bytes]],
    field_bits: int,
) -> np.ndarray:
    """Σ x_u: remove survivors' self-masks and the masks they share with dropped hospitals.

    `dropped_pairs` holds (survivor, dropped neighbour, that round's pair seed).
    """
    total = np.array(masked_sum, dtype=np.uint64, copy=True)
    for seed in self_seeds:
        apply_mask(total, seed, -1, field_bits)
    for survivor, dropped, seed in dropped_pairs:
        apply_mask(total, seed, -pair_sign(survivor, dropped), field_bits)
    return reduce_field(total, field_bits)
