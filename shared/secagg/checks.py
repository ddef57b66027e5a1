"""What a hospital verifies before trusting a coordinator message: the roster, unmask requests."""

from __future__ import annotations

from collections.abc import Mapping

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.authentication import (
    HospitalIdentity,
    check_confirmations,
    check_signed_roster,
)
from medfed.shared.secagg.config import SecureAggregationConfig
from medfed.shared.secagg.graph import components, neighbour_graph
from medfed.shared.secagg.keys import check_public_key
from medfed.shared.secagg.messages import Roster, SetupAdvertisement, UnmaskRequest

MIN_RUN_SEED_BYTES = 16


def check_roster(
    roster: Roster,
    own: SetupAdvertisement,
    config: SecureAggregationConfig,
    identity: HospitalIdentity,
    run_id: str,
) -> None:
    """The roster is of our run, lists us under our name with our keys, and otherwise only
    pinned peers with keys their identity keys signed for this run; distinct valid keys, and
    the k, t and field we configured."""
    me = own.hospital_id
    where = f"hospital {me}: roster of run '{roster.run_id}'"
    if roster.run_id != run_id:
        raise SecureAggregationError(f"{where} is not for this session's run '{run_id}'")
    if len(roster.run_seed) < MIN_RUN_SEED_BYTES:
        raise SecureAggregationError(f"{where}: run_seed must be ≥ {MIN_RUN_SEED_BYTES} bytes")
    if me not in roster.hospital_ids:
        raise SecureAggregationError(f"{where} does not list this hospital")
    position = roster.hospital_ids.index(me)
    if (roster.mask_public_keys[position], roster.share_public_keys[position]) != (
        own.mask_public_key,
        own.share_public_key,
    ):
        raise SecureAggregationError(f"{where} does not carry this hospital's public keys")
    if roster.hospital_names[position] != own.name:
        raise SecureAggregationError(f"{where} lists this hospital under another name")
    check_signed_roster(roster, identity, where)
    all_keys = roster.mask_public_keys + roster.share_public_keys
    if len(set(all_keys)) != len(all_keys):
        raise SecureAggregationError(f"{where} repeats a public key")
    for key in all_keys:
        check_public_key(key, f"{where}: a public key")
    num_neighbours = config.neighbours_for(len(roster.hospital_ids))
    expected = {
        "neighbours": num_neighbours,
        "threshold": config.threshold_for(num_neighbours),
        "field_bits": config.field_bits,
        "quantization_bits": config.quantization_bits,
        "clipping_range": config.clipping_range,
    }
    for key, value in expected.items():
        if getattr(roster, key) != value:
            raise SecureAggregationError(
                f"{where}: {key} = {getattr(roster, key)} but this hospital's "
                f"secure_aggregation settings give {value}; both sides need the same config"
            )
    config.check_for(len(roster.hospital_ids))


def check_unmask_request(
    roster: Roster,
    request: UnmaskRequest,
    *,
    hospital_id: int,
    identity: HospitalIdentity,
    open_attempt: tuple[int, int] | None,
    declared_before: Mapping[int, bool] | None,
) -> dict[int, bool]:
    """Neighbour → declared survived, if `request` is safe to answer; else raise.

    Refused: another run or hospital, an attempt other than our latest upload, a peer both
    survived and dropped, ourselves dropped, an incomplete partition of the roster, fewer than
    t surviving neighbours (our self-mask could not be removed anyway, and with t > k/2 it
    bounds the pair seeds we give out below t), survivors in separate graph components, a
    neighbour's status differing from an earlier request of the same attempt, or a survivor
    whose signed roster digest is missing or differs from ours (`check_confirmations`).
    """
    where = (
        f"hospital {hospital_id}: unmask request for round {request.round_number} "
        f"attempt {request.attempt}"
    )
    if request.run_id != roster.run_id or request.hospital_id != hospital_id:
        raise SecureAggregationError(f"{where} is addressed to another run or hospital")
    if open_attempt != (request.round_number, request.attempt):
        raise SecureAggregationError(
            f"{where} does not match this hospital's latest upload (round, attempt) = "
            f"{open_attempt}"
        )
    survivors, dropped = set(request.survivors), set(request.dropped)
    if survivors & dropped:
        raise SecureAggregationError(
            f"{where} lists hospitals {sorted(survivors & dropped)} as both survived and dropped"
        )
    if hospital_id in dropped or hospital_id not in survivors:
        raise SecureAggregationError(f"{where} does not list this hospital as a survivor")
    if survivors | dropped != set(roster.hospital_ids):
        raise SecureAggregationError(
            f"{where} must list every roster hospital once, as survived or dropped"
        )
    graph = neighbour_graph(roster.hospital_ids, roster.run_seed, roster.neighbours)
    declared = {v: v in survivors for v in graph[hospital_id]}
    if sum(declared.values()) < roster.threshold:
        raise SecureAggregationError(
            f"{where} leaves fewer than t = {roster.threshold} surviving neighbours"
        )
    if len(components(graph, survivors)) != 1:
        raise SecureAggregationError(f"{where} splits the survivors into disconnected groups")
    if declared_before is not None and dict(declared_before) != declared:
        changed = sorted(v for v in declared if declared[v] != declared_before.get(v))
        raise SecureAggregationError(
            f"{where} changes whether neighbours {changed} survived since an earlier request "
            "of the same attempt; revealing both a self-mask share and a pair seed is refused"
        )
    check_confirmations(roster, request, identity, where)
    return declared
