"""The public neighbour graph: a circulant ring over the roster, shuffled by the run seed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from medfed.shared.errors import SecureAggregationError

Graph = Mapping[int, tuple[int, ...]]


def ring_order(hospital_ids: Iterable[int], run_seed: bytes) -> list[int]:
    """The roster ids sorted by SHA-256(run_seed ‖ id): public, deterministic, seed-shuffled."""
    return sorted(
        sorted(set(hospital_ids)),
        key=lambda hospital: hashlib.sha256(run_seed + hospital.to_bytes(8, "big")).digest(),
    )


def neighbour_graph(hospital_ids: Iterable[int], run_seed: bytes, num_neighbours: int) -> Graph:
    """Each hospital's sorted neighbours: k/2 on each side of the ring, or all when k = n − 1.

    The graph is symmetric (v ∈ N(u) ⇔ u ∈ N(v)) and k-regular; a circulant ring with offsets
    1..k/2 stays connected after removing any k − 1 hospitals.
    """
    ring = ring_order(hospital_ids, run_seed)
    size = len(ring)
    if num_neighbours == size - 1:
        return {hospital: tuple(sorted(set(ring) - {hospital})) for hospital in ring}
    if num_neighbours % 2 or not 2 <= num_neighbours < size - 1:
        raise SecureAggregationError(
            f"secure_aggregation.neighbours = {num_neighbours} does not fit {size} hospitals: "
            f"use an even number in [2, {size - 2}] or leave it unset for all"
        )
    half = num_neighbours // 2
    return {
        hospital: tuple(
            sorted(ring[(position + offset) % size] for offset in range(-half, half + 1) if offset)
        )
        for position, hospital in enumerate(ring)
    }


def short_of_neighbours(graph: Graph, survivors: Iterable[int], threshold: int) -> list[int]:
    """Survivors with fewer than `threshold` surviving neighbours: their self-mask is stuck."""
    surviving = set(survivors)
    return sorted(u for u in surviving if sum(v in surviving for v in graph[u]) < threshold)


def components(graph: Graph, members: Iterable[int]) -> list[set[int]]:
    """Connected components of the subgraph that `members` induce."""
    remaining = set(members)
    found: list[set[int]] = []
    while remaining:
        frontier = [remaining.pop()]
        component = set(frontier)
        while frontier:
            for neighbour in graph[frontier.pop()]:
                if neighbour in remaining:
                    remaining.discard(neighbour)
                    component.add(neighbour)
                    frontier.append(neighbour)
        found.append(component)
    return found
