"""A hospital refuses unmask requests, rosters and uploads that are unsafe, and records nothing."""

from __future__ import annotations

import numpy as np
import pytest

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import SecAggHospital


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda r, me, peer: {**r, "survivors": r["survivors"], "dropped": [peer]}, "both"),
        (
            lambda r, me, peer: {
                **r,
                "survivors": [u for u in r["survivors"] if u != me],
                "dropped": [me],
            },
            "not list this hospital as a survivor",
        ),
        (lambda r, me, peer: {**r, "dropped": [10**9]}, "every roster hospital"),
        (lambda r, me, peer: {**r, "round_number": 2}, "latest upload"),
        (lambda r, me, peer: {**r, "attempt": 1}, "latest upload"),
        (lambda r, me, peer: {**r, "hospital_id": peer}, "another run or hospital"),
        (lambda r, me, peer: {**r, "run_id": "other"}, "another run or hospital"),
    ],
)
def test_hospital_refuses_inconsistent_unmask_requests(make_federation, mutate, reason) -> None:
    federation = make_federation(5)
    me, peer = federation.ids[0], federation.ids[1]
    uploads = federation.upload_everyone(federation.updates(length=8), round_number=1)
    request = federation.forge_request(uploads, me, set(), 1).to_dict()
    with pytest.raises(SecureAggregationError, match=reason):
        federation.hospitals[me].unmask(mutate(request, me, peer))
    assert federation.hospitals[me]._declared is None  # nothing recorded, nothing revealed


def test_hospital_refuses_a_tampered_share_ciphertext(make_federation) -> None:
    federation = make_federation(5)
    me = federation.ids[0]
    uploads = federation.upload_everyone(federation.updates(length=8), round_number=1)
    request = federation.forge_request(uploads, me, set(), 1).to_dict()
    sealed = bytearray(request["sealed_shares"][1])
    sealed[20] ^= 0x80
    request["sealed_shares"][1] = bytes(sealed)
    with pytest.raises(SecureAggregationError, match="AES-GCM authentication"):
        federation.hospitals[me].unmask(request)


def test_hospital_refuses_a_share_forwarded_from_a_peer_declared_dropped(make_federation) -> None:
    federation = make_federation(6)
    me, peer = federation.ids[0], federation.ids[1]
    uploads = federation.upload_everyone(federation.updates(length=8), round_number=1)
    request = federation.forge_request(uploads, me, {peer}, 1).to_dict()
    request["share_senders"].append(peer)
    request["sealed_shares"].append(uploads[peer].sealed_shares[0])
    with pytest.raises(SecureAggregationError, match="not a surviving neighbour"):
        federation.hospitals[me].unmask(request)


def test_hospital_answers_a_repeated_identical_request_the_same_way(make_federation) -> None:
    federation = make_federation(6)
    me, peer = federation.ids[0], federation.ids[5]
    uploads = federation.upload_everyone(federation.updates(length=8), round_number=1)
    request = federation.forge_request(uploads, me, {peer}, 1)
    first, second = (
        federation.hospitals[me].unmask(request),
        federation.hospitals[me].unmask(request),
    )
    assert first.pair_seeds == second.pair_seeds and first.share_values == second.share_values


def test_hospital_refuses_old_attempts_and_masking_twice(make_federation) -> None:
    federation = make_federation(5)
    hospital = federation.hospitals[federation.ids[0]]
    uploads = federation.upload_everyone(federation.updates(length=8), round_number=1)
    hospital.mask_update(np.zeros(7), 1, round_number=1, attempt=1)
    with pytest.raises(SecureAggregationError, match="latest upload"):
        hospital.unmask(federation.forge_request(uploads, federation.ids[0], set(), 1))
    with pytest.raises(SecureAggregationError, match="already masked"):
        hospital.mask_update(np.zeros(7), 1, round_number=1, attempt=1)
    with pytest.raises(SecureAggregationError, match="already masked"):
        hospital.mask_update(np.zeros(7), 1, round_number=0, attempt=5)


def test_hospital_refuses_a_roster_that_lowers_the_threshold_or_swaps_its_keys(
    make_federation,
) -> None:
    federation = make_federation(5)
    roster = federation.coordinator.roster().to_dict()
    first = federation.hospitals[federation.ids[0]]
    fresh = SecAggHospital(
        first.hospital_id, federation.config, run_id="run-test", identity=first.identity
    )
    with pytest.raises(SecureAggregationError, match="public keys"):
        fresh.join(roster)
    hospital = federation.hospitals[federation.ids[0]]
    with pytest.raises(SecureAggregationError, match="threshold"):
        hospital.join({**roster, "threshold": 1})
