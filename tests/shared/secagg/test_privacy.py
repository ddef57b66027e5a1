"""What the coordinator can see: a masked vector is uniform and independent of its input, and
no sequence of unmask requests gets both the self-mask and the pair seeds of one hospital."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import UnmaskResponse
from medfed.shared.secagg.prg import mask_from_seed
from medfed.shared.secagg.quantize import quantize
from medfed.shared.secagg.shares import SeedShare, combine_seed

FIELD_BITS = 62
BUCKET_BITS = 4
LENGTH = 1 << 15
P_FLOOR = 1e-6  # a uniform vector fails one of these tests about once in a million runs


def top_bucket_counts(vector: np.ndarray) -> np.ndarray:
    return np.bincount(
        (vector >> np.uint64(FIELD_BITS - BUCKET_BITS)).astype(np.int64), minlength=16
    )


def low_bucket_counts(vector: np.ndarray) -> np.ndarray:
    return np.bincount((vector & np.uint64(15)).astype(np.int64), minlength=16)


def uniform_p_value(counts: np.ndarray) -> float:
    return float(stats.chisquare(counts).pvalue)


def strip_pair_masks(masked: np.ndarray, owner: int, seeds: dict[int, bytes]) -> np.ndarray:
    """The attacker removes every pair mask it holds, by the public mask formula."""
    total = masked.copy()
    for peer, seed in seeds.items():
        mask = mask_from_seed(seed, len(total), FIELD_BITS)
        total = total - mask if peer > owner else total + mask
    return total & np.uint64(2**FIELD_BITS - 1)


def seeds_for(responses: list[UnmaskResponse], target: int) -> dict[int, bytes]:
    return {
        r.hospital_id: seed
        for r in responses
        for peer, seed in zip(r.seed_peers, r.pair_seeds, strict=True)
        if peer == target
    }


def self_mask_shares_of(responses: list[UnmaskResponse], target: int) -> list[SeedShare]:
    return [
        SeedShare(index, value)
        for r in responses
        for owner, index, value in zip(r.share_owners, r.share_indices, r.share_values, strict=True)
        if owner == target
    ]


def test_masked_vector_is_uniform_over_the_field(make_federation) -> None:
    federation = make_federation(5, neighbours=2)
    hospital = federation.hospitals[federation.ids[0]]
    encoded = quantize(np.full(LENGTH - 1, 8.0), 100_000, federation.config)
    masked = hospital.mask_update(np.full(LENGTH - 1, 8.0), 100_000, 1).masked
    assert uniform_p_value(top_bucket_counts(masked)) > P_FLOOR
    assert uniform_p_value(low_bucket_counts(masked)) > P_FLOOR
    # The same test does see the structure of an unmasked vector.
    assert uniform_p_value(top_bucket_counts(encoded)) < 1e-100


def test_masked_vector_is_independent_of_the_input(make_federation) -> None:
    federation = make_federation(5, neighbours=2)
    hospital = federation.hospitals[federation.ids[0]]
    zeros = hospital.mask_update(np.zeros(LENGTH - 1), 1, round_number=1).masked
    extreme = hospital.mask_update(np.full(LENGTH - 1, -8.0), 100_000, round_number=2).masked
    for counts in (top_bucket_counts, low_bucket_counts):
        table = np.vstack([counts(zeros), counts(extreme)])
        assert stats.chi2_contingency(table).pvalue > P_FLOOR


def test_coordinator_declaring_an_uploaded_hospital_dropped_gets_only_a_masked_vector(
    make_federation,
) -> None:
    federation = make_federation(7, neighbours=4)  # t = 3
    target = federation.ids[2]
    updates = federation.updates(length=LENGTH - 1, scale=0.0)  # all-zero updates
    uploads = federation.upload_everyone(updates, round_number=1)
    responses = [
        federation.hospitals[u].unmask(federation.forge_request(uploads, u, {target}, 1))
        for u in federation.ids
        if u != target
    ]
    seeds = seeds_for(responses, target)
    assert set(seeds) == set(federation.hospitals[target].neighbours)
    assert self_mask_shares_of(responses, target) == []

    recovered = strip_pair_masks(uploads[target].masked, target, seeds)
    encoded = quantize(*updates[target], federation.config)
    assert not np.array_equal(recovered, encoded)
    assert uniform_p_value(top_bucket_counts(recovered)) > P_FLOOR

    # Asking the same neighbours again, now calling the target a survivor, is refused.
    for neighbour in federation.hospitals[target].neighbours:
        request = federation.forge_request(uploads, neighbour, set(), 1)
        with pytest.raises(SecureAggregationError, match="revealing both"):
            federation.hospitals[neighbour].unmask(request)


def test_split_views_cannot_collect_self_mask_and_all_pair_seeds_of_one_hospital(
    make_federation,
) -> None:
    federation = make_federation(9, neighbours=6)  # t = 4 > k/2
    target = federation.ids[4]
    neighbours = federation.hospitals[target].neighbours
    threshold = federation.threshold
    updates = federation.updates(length=LENGTH - 1, scale=0.0)
    uploads = federation.upload_everyone(updates, round_number=5)
    # To rebuild b_target the coordinator needs ≥ t neighbours told "target survived"; those
    # refuse its pair seed, so only the target could give it — and it refuses to call ≥ t of
    # its own neighbours dropped, since t > k − t.
    for size in range(threshold, len(neighbours) + 1):
        for believers in itertools.combinations(neighbours, size):
            request = federation.forge_request(uploads, target, set(believers), 5)
            with pytest.raises(SecureAggregationError, match="fewer than t"):
                federation.hospitals[target].unmask(request)

    # Play the best split: t believers give shares, the rest give seeds.
    believers, doubters = neighbours[:threshold], neighbours[threshold:]
    responses = [
        federation.hospitals[v].unmask(federation.forge_request(uploads, v, set(), 5))
        for v in believers
    ] + [
        federation.hospitals[v].unmask(federation.forge_request(uploads, v, {target}, 5))
        for v in doubters
    ]
    self_seed = combine_seed(self_mask_shares_of(responses, target), threshold)
    partly = strip_pair_masks(uploads[target].masked, target, seeds_for(responses, target))
    partly = partly - mask_from_seed(self_seed, len(partly), FIELD_BITS)
    partly &= np.uint64(2**FIELD_BITS - 1)
    assert not np.array_equal(partly, quantize(*updates[target], federation.config))
    assert uniform_p_value(top_bucket_counts(partly)) > P_FLOOR


def test_coordinator_with_t_minus_one_colluding_neighbours_cannot_unmask_a_dropped_hospital(
    make_federation,
) -> None:
    federation = make_federation(9, neighbours=6)  # t = 4
    target = federation.ids[0]
    colluders = federation.hospitals[target].neighbours[: federation.threshold - 1]
    updates = federation.updates(length=16)
    uploads = federation.upload_everyone(updates, round_number=2)
    # Colluders hand over their shares of the target's self-mask seed; honest ones, told the
    # target dropped, give its pair seeds.
    responses = [
        federation.hospitals[c].unmask(federation.forge_request(uploads, c, set(), 2))
        for c in colluders
    ]
    honest = [u for u in federation.ids if u != target and u not in colluders]
    responses += [
        federation.hospitals[u].unmask(federation.forge_request(uploads, u, {target}, 2))
        for u in honest
    ]
    assert set(seeds_for(responses, target)) == set(federation.hospitals[target].neighbours) - set(
        colluders
    )  # colluders know their own pair seeds with the target anyway
    shares = self_mask_shares_of(responses, target)
    assert len(shares) == federation.threshold - 1
    with pytest.raises(SecureAggregationError, match="needed"):
        combine_seed(shares, federation.threshold)
