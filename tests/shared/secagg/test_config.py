"""`[secure_aggregation]` settings: neighbours and the threshold rule t = ⌊f·k⌋ + 1 > k/2."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import SecureAggregationConfig


@pytest.mark.parametrize(
    "fraction, k, expected_t",
    [(0.5, 2, 2), (0.5, 4, 3), (0.5, 5, 3), (0.5, 6, 4), (0.6, 5, 4), (0.6, 10, 7), (0.9, 10, 10)],
)
def test_threshold_is_smallest_count_strictly_above_the_fraction(
    fraction: float, k: int, expected_t: int
) -> None:
    config = SecureAggregationConfig(threshold_fraction=fraction)
    assert config.threshold_for(k) == expected_t


@pytest.mark.parametrize("k", range(2, 60))
def test_threshold_is_always_a_strict_majority_of_neighbours(k: int) -> None:
    for fraction in (0.5, 0.51, 0.66, 0.75, 0.99):
        t = SecureAggregationConfig(threshold_fraction=fraction).threshold_for(k)
        assert k / 2 < t <= k


def test_unset_or_large_neighbours_mean_plain_secagg() -> None:
    assert SecureAggregationConfig().neighbours_for(7) == 6
    assert SecureAggregationConfig(neighbours=8).neighbours_for(7) == 6
    assert SecureAggregationConfig(neighbours=4).neighbours_for(7) == 4


def test_refuses_fewer_than_three_hospitals() -> None:
    with pytest.raises(SecureAggregationError, match="min_hospitals = 3 hospitals, got 2"):
        SecureAggregationConfig().neighbours_for(2)


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"neighbours": 3}, "neighbours"),
        ({"threshold_fraction": 0.4}, "threshold_fraction"),
        ({"threshold_fraction": 1.0}, "threshold_fraction"),
        ({"field_bits": 63}, "field_bits"),
        ({"max_weight": 2**30, "quantization_bits": 24}, "max_weight"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_rejects_bad_settings_naming_the_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        SecureAggregationConfig(**settings)
