"""The coordinator's half of the unmask exchange: requests out, answers checked, Σ x_u back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.attempt import AttemptRecord
from medfed.shared.secagg.graph import Graph
from medfed.shared.secagg.masking import unmask_sum
from medfed.shared.secagg.messages import MaskedUpload, UnmaskRequest, UnmaskResponse
from medfed.shared.secagg.shares import SeedShare, combine_seed


class UnmaskIncomplete(SecureAggregationError):
    """Some survivor's masks cannot be removed: abort, retry the round with a fresh attempt."""

    code = "secure_aggregation_unmask_incomplete"


def build_requests(
    *, run_id: str, graph: Graph, roster_ids: Sequence[int], state: AttemptRecord
) -> list[UnmaskRequest]:
    """One request per survivor: the same survivor/dropped split for all, its sealed shares."""
    survivors = list(state.survivors or ())
    surviving = set(survivors)
    dropped = sorted(set(roster_ids) - surviving)
    requests = []
    for hospital in survivors:
        senders = [v for v in graph[hospital] if v in surviving]
        sealed = [
            state.uploads[v].sealed_shares[state.uploads[v].share_receivers.index(hospital)]
            for v in senders
        ]
        requests.append(
            UnmaskRequest(
                run_id=run_id,
                hospital_id=hospital,
                round_number=state.round_number,
                attempt=state.attempt,
                survivors=list(survivors),
                dropped=list(dropped),
                share_senders=senders,
                sealed_shares=sealed,
                confirmations=[state.uploads[u].roster_confirmation for u in survivors],
            )
        )
    return requests


def recover_sum(
    *,
    graph: Graph,
    threshold: int,
    field_bits: int,
    uploads: Mapping[int, MaskedUpload],
    survivors: Sequence[int],
    responses: Mapping[int, UnmaskResponse],
) -> np.ndarray:
    """Σ_{u ∈ survivors} encoded x_u mod 2^field_bits.

    Raises `UnmaskIncomplete` when a survivor's self-mask seed has fewer than `threshold`
    shares, or a survivor with dropped neighbours sent no pair seeds.
    """
    surviving = set(survivors)
    shares: dict[int, list[SeedShare]] = {u: [] for u in survivors}
    for response in responses.values():
        for owner, index, value in zip(
            response.share_owners, response.share_indices, response.share_values, strict=True
        ):
            shares[owner].append(SeedShare(index=index, value=value))
    short = sorted(u for u in survivors if len({s.index for s in shares[u]}) < threshold)
    silent = sorted(
        u for u in survivors if u not in responses and any(v not in surviving for v in graph[u])
    )
    if short or silent:
        raise UnmaskIncomplete(
            f"cannot unmask: self-mask seeds of hospitals {short} have fewer than t = "
            f"{threshold} shares, pair seeds of hospitals {silent} are missing; abort this "
            "attempt and retry the round with attempt + 1 (fresh masks)"
        )
    masked_sum = uploads[survivors[0]].masked.copy()  # the uploads stay as they arrived
    for u in survivors[1:]:
        np.add(masked_sum, uploads[u].masked, out=masked_sum)
    dropped_pairs = [
        (u, peer, seed)
        for u in survivors
        if u in responses
        for peer, seed in zip(responses[u].seed_peers, responses[u].pair_seeds, strict=True)
    ]
    return unmask_sum(
        masked_sum,
        self_seeds=[combine_seed(shares[u], threshold) for u in survivors],
        dropped_pairs=dropped_pairs,
        field_bits=field_bits,
    )


def check_response(
    response: UnmaskResponse, *, graph: Graph, survivors: Sequence[int], num_neighbours: int
) -> None:
    """A response carries shares only of surviving neighbours and seeds of exactly the dropped."""
    me, surviving = response.hospital_id, set(survivors)
    where = f"unmask response of hospital {me}"
    if me not in surviving:
        raise SecureAggregationError(f"{where}: it was not asked (not a survivor)")
    neighbours = set(graph[me])
    if not set(response.share_owners) <= neighbours & surviving:
        raise SecureAggregationError(f"{where}: shares of hospitals that are not its survivors")
    if not all(1 <= index <= num_neighbours for index in response.share_indices):
        raise SecureAggregationError(f"{where}: a share index outside 1..{num_neighbours}")
    if set(response.seed_peers) != neighbours - surviving:
        raise SecureAggregationError(f"{where}: pair seeds for other than its dropped neighbours")
