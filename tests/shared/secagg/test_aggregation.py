"""End to end: the unmasked aggregate equals the plaintext weighted average within the bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import (
    SecAggCoordinator,
    SecAggHospital,
    UnmaskIncomplete,
    quantization_error_bound,
)


def bound(federation, updates, members) -> float:
    config = federation.config
    return quantization_error_bound(
        num_hospitals=len(members),
        total_weight=sum(updates[u][1] for u in members),
        clipping_range=config.clipping_range,
        quantization_bits=config.quantization_bits,
        max_weight=config.max_weight,
    )


@pytest.mark.parametrize(
    "num_hospitals, neighbours",
    [(3, None), (5, None), (8, None), (8, 4), (12, 6), (15, 2), (20, 4)],
)
def test_aggregate_equals_plaintext_weighted_average(
    make_federation, num_hospitals: int, neighbours: int | None
) -> None:
    federation = make_federation(num_hospitals, neighbours=neighbours)
    updates = federation.updates(length=2_000, scale=9.0)  # some values beyond ±8 get clipped
    result = federation.run_round(updates, round_number=1)
    golden = federation.expected_average(updates, federation.ids)
    assert result.survivors == federation.ids and result.dropped == []
    assert result.total_weight == sum(weight for _, weight in updates.values())
    assert np.max(np.abs(result.weighted_average - golden)) <= bound(
        federation, updates, federation.ids
    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    num_hospitals=st.integers(3, 9),
    values=st.lists(st.floats(-8, 8), min_size=1, max_size=6),
    weights=st.lists(st.integers(1, 100_000), min_size=9, max_size=9),
)
def test_aggregate_equals_plaintext_for_any_values_and_weights(
    make_federation, num_hospitals: int, values: list[float], weights: list[int]
) -> None:
    federation = make_federation(num_hospitals)
    updates = {
        hospital: (np.array(values) * (i % 3 - 1), weights[i])
        for i, hospital in enumerate(federation.ids)
    }
    result = federation.run_round(updates, round_number=0)
    golden = federation.expected_average(updates, federation.ids)
    assert np.max(np.abs(result.weighted_average - golden)) <= bound(
        federation, updates, federation.ids
    )


@pytest.mark.parametrize(
    "num_hospitals, neighbours, dropped_positions",
    [
        (7, None, [0]),
        (7, None, [2, 5]),  # n − t − 1 = 7 − 4 − 1: the most plain SecAgg can lose
        (10, None, [1, 3, 8, 9]),
        (12, 6, [0, 6]),
        (12, 4, [5]),
    ],
)
def test_dropouts_before_upload_still_give_the_survivors_average(
    make_federation, num_hospitals: int, neighbours: int | None, dropped_positions: list[int]
) -> None:
    federation = make_federation(num_hospitals, neighbours=neighbours)
    dropped = {federation.ids[p] for p in dropped_positions}
    senders = [u for u in federation.ids if u not in dropped]
    updates = federation.updates(length=500)
    result = federation.run_round(updates, round_number=3, senders=senders)
    golden = federation.expected_average(updates, senders)
    assert result.survivors == senders and result.dropped == sorted(dropped)
    assert np.max(np.abs(result.weighted_average - golden)) <= bound(federation, updates, senders)


def test_most_dropouts_plain_secagg_tolerates_is_n_minus_t_minus_one(make_federation) -> None:
    federation = make_federation(7)  # k = 6, t = 4: each survivor needs 4 surviving others
    assert federation.threshold == 4
    updates = federation.updates(length=10)
    federation.upload(updates, round_number=1, senders=federation.ids[:4])
    with pytest.raises(SecureAggregationError, match="nothing is unmasked"):
        federation.coordinator.unmask_requests()


def test_survivor_short_of_t_surviving_neighbours_fails_the_attempt_cleanly(
    make_federation,
) -> None:
    federation = make_federation(10, neighbours=4)  # t = 3: each may lose one neighbour
    lonely = federation.ids[0]
    dropped = set(federation.hospitals[lonely].neighbours[:2])
    senders = [u for u in federation.ids if u not in dropped]
    federation.upload(federation.updates(length=5), round_number=1, senders=senders)
    with pytest.raises(SecureAggregationError, match="fewer than t = 3 surviving neighbours"):
        federation.coordinator.unmask_requests()
    assert all(h._declared is None for h in federation.hospitals.values())


def test_dropout_during_unmasking_aborts_and_a_fresh_attempt_succeeds(make_federation) -> None:
    federation = make_federation(12, neighbours=6)  # t = 4: each may lose two neighbours
    updates = federation.updates(length=300)
    first_drop = federation.ids[5]
    senders = [u for u in federation.ids if u != first_drop]
    federation.upload(updates, round_number=2, attempt=0, senders=senders)
    # A survivor with a dropped neighbour vanishes before answering: its pair seed is lost.
    vanished = next(u for u in senders if first_drop in federation.hospitals[u].neighbours)
    federation.unmask(answering=[u for u in senders if u != vanished])
    assert federation.coordinator.pending_responses() == [vanished]
    with pytest.raises(UnmaskIncomplete, match="attempt \\+ 1"):
        federation.coordinator.aggregate()

    retry_senders = [u for u in senders if u != vanished]
    result = federation.run_round(updates, round_number=2, attempt=1, senders=retry_senders)
    golden = federation.expected_average(updates, retry_senders)
    assert result.survivors == retry_senders
    assert np.max(np.abs(result.weighted_average - golden)) <= bound(
        federation, updates, retry_senders
    )


def test_failed_attempt_cannot_be_finished_by_late_answers(make_federation) -> None:
    federation = make_federation(6)
    updates = federation.updates(length=20)
    senders = federation.ids[:5]
    federation.upload(updates, round_number=1, senders=senders)
    requests = federation.coordinator.unmask_requests()
    with pytest.raises(UnmaskIncomplete):
        federation.coordinator.aggregate()  # nobody has answered yet
    late = federation.hospitals[requests[0].hospital_id].unmask(requests[0])
    with pytest.raises(SecureAggregationError, match="no open attempt"):
        federation.coordinator.receive_unmask_response(late)
    with pytest.raises(SecureAggregationError, match="not after"):
        federation.coordinator.begin_round(1, 0)


def test_survivor_vanishing_during_unmasking_still_counts_when_masks_can_be_removed(
    make_federation,
) -> None:
    federation = make_federation(7)  # nobody dropped, every self-mask seed has 6 ≥ 4 shares
    updates = federation.updates(length=100)
    federation.upload(updates, round_number=1)
    federation.unmask(answering=federation.ids[1:])
    result = federation.coordinator.aggregate()
    golden = federation.expected_average(updates, federation.ids)
    assert np.max(np.abs(result.weighted_average - golden)) <= bound(
        federation, updates, federation.ids
    )


def test_fewer_than_t_survivors_fails_cleanly_without_unmask_requests(make_federation) -> None:
    federation = make_federation(9, neighbours=6)  # t = 4
    updates = federation.updates(length=10)
    federation.upload(updates, round_number=1, senders=federation.ids[:3])
    with pytest.raises(SecureAggregationError, match="fewer than t = 4"):
        federation.coordinator.unmask_requests()
    # Nothing was asked, so every hospital still refuses nothing and revealed nothing.
    assert all(h._declared is None for h in federation.hospitals.values())


def test_several_rounds_reuse_the_setup(make_federation) -> None:
    federation = make_federation(6, neighbours=4)
    for round_number in range(3):
        updates = federation.updates(length=64)
        result = federation.run_round(updates, round_number=round_number)
        golden = federation.expected_average(updates, federation.ids)
        assert np.allclose(result.weighted_average, golden, atol=1e-5)


def test_sessions_resume_from_state_dicts_between_upload_and_unmask(make_federation) -> None:
    federation = make_federation(7, neighbours=4)
    updates = federation.updates(length=40)
    federation.upload(updates, round_number=4, senders=federation.ids[1:])
    federation.coordinator = SecAggCoordinator.from_state_dict(federation.coordinator.state_dict())
    federation.hospitals = {
        u: SecAggHospital.from_state_dict(h.state_dict(), h.identity)
        for u, h in federation.hospitals.items()
    }
    federation.unmask()
    result = federation.coordinator.aggregate()
    golden = federation.expected_average(updates, federation.ids[1:])
    assert np.allclose(result.weighted_average, golden, atol=1e-5)


def test_coordinator_refuses_another_attempt_of_a_round_it_aggregated(make_federation) -> None:
    federation = make_federation(4)
    federation.run_round(federation.updates(length=6), round_number=1)
    with pytest.raises(SecureAggregationError, match="aggregated once"):
        federation.coordinator.begin_round(1, 1)
    restored = SecAggCoordinator.from_state_dict(federation.coordinator.state_dict())
    with pytest.raises(SecureAggregationError, match="aggregated once"):
        restored.begin_round(1, 1)
    restored.begin_round(2, 0)  # the next round goes on
