"""A coordinator written to cheat with rosters: substituted keys are refused, and hospitals
given different rosters find out before they answer an unmask request.

Issue 12, item 4: before rosters were signed, a coordinator could give one hospital a roster
whose peer keys it made itself, open that hospital's sealed shares and strip its masks alone
(recovered to 1.7e-9). Here every such roster is refused at `join`, before anything is masked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import SecAggCoordinator, SecAggHospital, UnmaskRequest, keys
from medfed.shared.secagg.authentication import advertisement_payload

from .conftest import make_identities

RUN = "run-roster"
COORDINATOR_KEY = Ed25519PrivateKey.generate()  # the cheat's own signing key, pinned by nobody


def _setup(make_federation, num_hospitals: int = 5):
    """Fresh sessions that advertised but joined nothing, and the honest roster."""
    federation = make_federation(num_hospitals)
    identities = make_identities(federation.ids)
    hospitals = {
        u: SecAggHospital(u, federation.config, run_id=RUN, identity=identities[u])
        for u in federation.ids
    }
    coordinator = SecAggCoordinator(RUN, federation.config)
    for hospital in hospitals.values():
        coordinator.add_advertisement(hospital.advertise())
    return hospitals, coordinator, coordinator.roster().to_dict()


def _forged_keys(roster: dict, position: int, *, resign: bool) -> dict:
    """The roster with the coordinator's own X25519 keys at `position` (re-signed with the
    coordinator's key if `resign`)."""
    forged = {
        key: list(value) if isinstance(value, list) else value for key, value in roster.items()
    }
    forged["mask_public_keys"][position] = keys.public_key(keys.generate_private_key())
    forged["share_public_keys"][position] = keys.public_key(keys.generate_private_key())
    if resign:
        payload = advertisement_payload(
            RUN,
            forged["hospital_names"][position],
            forged["hospital_ids"][position],
            forged["mask_public_keys"][position],
            forged["share_public_keys"][position],
        )
        forged["signatures"][position] = COORDINATOR_KEY.sign(payload)
    return forged


def _edit(roster: dict, **changes: Callable[[list], None]) -> dict:
    edited = {
        key: list(value) if isinstance(value, list) else value for key, value in roster.items()
    }
    for key, change in changes.items():
        change(edited[key])
    return edited


def _swap(items: list) -> None:
    items[1], items[2] = items[2], items[1]


def _rename(items: list) -> None:
    items[1] = "Coordinator"


def test_a_roster_of_coordinator_made_peer_keys_is_refused_and_nothing_is_masked(make_federation):
    hospitals, _, roster = _setup(make_federation)
    victim = hospitals[roster["hospital_ids"][0]]
    forged = roster
    for position in range(1, len(roster["hospital_ids"])):  # every peer: the whole attack
        forged = _forged_keys(forged, position, resign=True)
    with pytest.raises(SecureAggregationError, match="not signed by its pinned identity key"):
        victim.join(forged)
    with pytest.raises(SecureAggregationError, match="has not joined"):
        victim.mask_update(np.ones(8), 10, round_number=1)  # no upload, nothing to open


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda r: _forged_keys(r, 2, resign=False), "not signed by its pinned identity key"),
        (lambda r: _forged_keys(r, 2, resign=True), "not signed by its pinned identity key"),
        (lambda r: _edit(r, hospital_ids=_swap), "not signed by its pinned identity key"),
        (lambda r: _edit(r, mask_public_keys=_swap), "not signed by its pinned identity key"),
        (lambda r: _edit(r, hospital_names=_rename), "not in this hospital's peers file"),
        (lambda r: _edit(r, hospital_names=_swap), "not signed by its pinned identity key"),
        (lambda r: _forged_keys(r, 0, resign=True), "this hospital's public keys"),
        (lambda r: {**r, "hospital_names": r["hospital_names"][::-1]}, "another name"),
        (lambda r: {**r, "run_id": "another-run"}, "not for this session's run"),
    ],
)
def test_a_roster_with_one_substituted_or_unsigned_entry_is_refused(make_federation, forge, reason):
    hospitals, _, roster = _setup(make_federation)
    victim = hospitals[roster["hospital_ids"][0]]
    with pytest.raises(SecureAggregationError, match=reason):
        victim.join(forge(roster))
    victim.join(roster)  # the honest roster still checks out


def test_an_advertisement_signed_for_another_run_is_refused(make_federation):
    hospitals, _, roster = _setup(make_federation)
    peer = hospitals[roster["hospital_ids"][1]]
    replayed = SecAggHospital(
        peer.hospital_id, peer.config, run_id="earlier-run", identity=peer.identity
    ).advertise()
    forged = _edit(roster)
    forged["mask_public_keys"][1] = replayed.mask_public_key
    forged["share_public_keys"][1] = replayed.share_public_key
    forged["signatures"][1] = replayed.signature  # a genuine signature, of another run
    with pytest.raises(SecureAggregationError, match="not signed by its pinned identity key"):
        hospitals[roster["hospital_ids"][0]].join(forged)


def _masked_round(hospitals, rosters: dict[int, dict], coordinator):
    for u, hospital in hospitals.items():
        hospital.join(rosters[u])
    coordinator.begin_round(1)
    rng = np.random.default_rng(3)
    for hospital in hospitals.values():
        coordinator.receive_upload(hospital.mask_update(rng.uniform(-1, 1, 16), 5, 1))
    return coordinator.unmask_requests()


def test_two_hospitals_given_different_rosters_refuse_every_unmask_request(make_federation):
    hospitals, coordinator, roster = _setup(make_federation)
    ids = roster["hospital_ids"]
    # The same signed members, but one hospital gets another run seed (another neighbour
    # graph under k < n − 1, another digest): each roster alone checks out.
    other = {**roster, "run_seed": bytes(16)}
    rosters = {u: other if u == ids[0] else roster for u in ids}
    requests = _masked_round(hospitals, rosters, coordinator)
    assert len(requests) == len(ids)  # the coordinator's own checks pass
    for request in requests:
        with pytest.raises(SecureAggregationError, match="did not confirm the roster"):
            hospitals[request.hospital_id].unmask(request)


def test_a_hospital_left_out_of_the_others_roster_detects_it(make_federation):
    hospitals, coordinator, roster = _setup(make_federation, num_hospitals=5)
    ids = roster["hospital_ids"]
    # The victim is told the federation is ids[0..3]; the others were told all five.
    subset = {key: value[:4] if isinstance(value, list) else value for key, value in roster.items()}
    subset["neighbours"], subset["threshold"] = 3, 2
    victim = hospitals[ids[0]]
    victim.join(subset)
    for u in ids[1:]:
        hospitals[u].join(roster)
    uploads = {u: h.mask_update(np.zeros(4), 1, round_number=1) for u, h in hospitals.items()}
    request = UnmaskRequest(
        run_id=RUN,
        hospital_id=ids[0],
        round_number=1,
        attempt=0,
        survivors=ids[:4],
        dropped=[],
        share_senders=ids[1:4],
        sealed_shares=[
            uploads[v].sealed_shares[uploads[v].share_receivers.index(ids[0])] for v in ids[1:4]
        ],
        confirmations=[uploads[u].roster_confirmation for u in ids[:4]],
    )
    with pytest.raises(SecureAggregationError, match="did not confirm the roster"):
        victim.unmask(request)


@pytest.mark.parametrize("tamper", ["forged", "missing", "another hospital's"])
def test_an_unmask_request_without_every_survivors_own_confirmation_is_refused(
    make_federation, tamper
):
    hospitals, coordinator, roster = _setup(make_federation)
    requests = _masked_round(hospitals, dict.fromkeys(roster["hospital_ids"], roster), coordinator)
    request = requests[0].to_dict()
    confirmations = request["confirmations"]
    if tamper == "forged":
        confirmations[1] = COORDINATOR_KEY.sign(b"anything")
    elif tamper == "missing":
        del confirmations[1]
    else:
        confirmations[1] = confirmations[2]
    with pytest.raises(SecureAggregationError, match="confirm"):
        hospitals[request["hospital_id"]].unmask(request)


def test_honest_rosters_confirm_each_other_and_the_sum_is_exact(make_federation):
    hospitals, coordinator, roster = _setup(make_federation)
    requests = _masked_round(hospitals, dict.fromkeys(roster["hospital_ids"], roster), coordinator)
    for request in requests:
        coordinator.receive_unmask_response(hospitals[request.hospital_id].unmask(request))
    rng = np.random.default_rng(3)
    expected = sum(rng.uniform(-1, 1, 16) for _ in hospitals) / len(hospitals)
    assert np.max(np.abs(coordinator.aggregate().weighted_average - expected)) < 1e-6


def test_a_hospital_refuses_a_roster_smaller_than_its_own_min_hospitals(make_federation):
    hospitals, _, roster = _setup(make_federation, num_hospitals=5)
    # Every entry genuine and signed, but the coordinator left one member out.
    smaller = {
        key: value[:4] if isinstance(value, list) else value for key, value in roster.items()
    }
    smaller["neighbours"], smaller["threshold"] = 3, 2
    first = hospitals[roster["hospital_ids"][0]]
    strict = SecAggHospital(
        first.hospital_id,
        first.config.model_copy(update={"min_hospitals": 5}),
        run_id=RUN,
        identity=first.identity,
        mask_private_key=first._mask_private,
        share_private_key=first._share_private,
    )
    with pytest.raises(SecureAggregationError, match="min_hospitals = 5 hospitals, got 4"):
        strict.join(smaller)
    first.join(smaller)  # the default floor (3) accepts it
