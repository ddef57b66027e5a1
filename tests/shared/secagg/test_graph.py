"""The neighbour graph: symmetric, k-regular, seed-shuffled, robust to k − 1 removals."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.graph import components, neighbour_graph, short_of_neighbours


@settings(max_examples=50, deadline=None)
@given(size=st.integers(5, 40), half=st.integers(1, 6), seed=st.binary(min_size=16, max_size=16))
def test_ring_graph_is_symmetric_and_k_regular(size: int, half: int, seed: bytes) -> None:
    k = 2 * half
    if k >= size - 1:
        k = size - 1
    graph = neighbour_graph(range(100, 100 + size), seed, k)
    for hospital, neighbours in graph.items():
        assert len(set(neighbours)) == k and hospital not in neighbours
        assert all(hospital in graph[v] for v in neighbours)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), size=st.integers(6, 30), half=st.integers(1, 4))
def test_ring_graph_stays_connected_after_removing_fewer_than_k(
    data: st.DataObject, size: int, half: int
) -> None:
    k = min(2 * half, size - 1)
    graph = neighbour_graph(range(size), os.urandom(16), k)
    removed = data.draw(st.sets(st.integers(0, size - 1), max_size=k - 1))
    assert len(components(graph, set(range(size)) - removed)) == 1


def test_graph_is_deterministic_and_depends_on_the_run_seed() -> None:
    ids = list(range(20))
    first = neighbour_graph(ids, b"a" * 16, 4)
    assert neighbour_graph(list(reversed(ids)), b"a" * 16, 4) == first
    assert neighbour_graph(ids, b"b" * 16, 4) != first


def test_neighbours_equal_to_n_minus_one_is_the_complete_graph() -> None:
    graph = neighbour_graph([3, 1, 2, 4], b"s" * 16, 3)
    assert graph == {1: (2, 3, 4), 2: (1, 3, 4), 3: (1, 2, 4), 4: (1, 2, 3)}


@pytest.mark.parametrize("k", [3, 0, 8])
def test_refuses_odd_or_oversized_sparse_graphs(k: int) -> None:
    with pytest.raises(SecureAggregationError, match="secure_aggregation.neighbours"):
        neighbour_graph(range(8), b"s" * 16, k)


def test_lists_survivors_short_of_threshold_surviving_neighbours() -> None:
    graph = {1: (2,), 2: (1, 3, 4), 3: (2, 4), 4: (2, 3)}
    assert short_of_neighbours(graph, {1, 2, 3, 4}, 2) == [1]
    assert short_of_neighbours(graph, {1, 2, 3}, 2) == [1, 3]


def test_components_of_induced_subgraph() -> None:
    graph = {1: (2,), 2: (1, 3), 3: (2, 4), 4: (3,)}
    assert sorted(map(sorted, components(graph, {1, 2, 4}))) == [[1, 2], [4]]
