"""Fixed-point encoding: round trip within the stated bound, clipping, and the overflow check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import (
    SecureAggregationConfig,
    check_no_overflow,
    quantization_error_bound,
)
from medfed.shared.secagg.quantize import dequantize, quantize


@settings(max_examples=60, deadline=None)
@given(
    vectors=st.lists(
        st.tuples(
            st.lists(st.floats(-20, 20), min_size=5, max_size=5),
            st.integers(0, 100_000),
        ),
        min_size=1,
        max_size=8,
    ),
    quantization_bits=st.integers(4, 30),
)
def test_sum_of_encodings_decodes_to_weighted_average_within_bound(
    vectors: list[tuple[list[float], int]], quantization_bits: int
) -> None:
    config = SecureAggregationConfig(quantization_bits=quantization_bits)
    if sum(weight for _, weight in vectors) == 0:
        vectors[0] = (vectors[0][0], 1)
    total = np.zeros(6, dtype=np.uint64)
    for values, weight in vectors:
        total += quantize(np.array(values), weight, config)
    average, total_weight = dequantize(total, config)
    weights = np.array([weight for _, weight in vectors], dtype=np.float64)
    clipped = np.clip(np.array([values for values, _ in vectors]), -8.0, 8.0)
    golden = weights @ clipped / weights.sum()
    bound = quantization_error_bound(
        num_hospitals=len(vectors),
        total_weight=total_weight,
        clipping_range=8.0,
        quantization_bits=quantization_bits,
        max_weight=config.max_weight,
    )
    assert total_weight == int(weights.sum())
    assert np.max(np.abs(average - golden)) <= bound


def test_values_beyond_the_clipping_range_are_clipped() -> None:
    config = SecureAggregationConfig(clipping_range=1.0)
    average, _ = dequantize(quantize(np.array([5.0, -5.0, 0.25]), 3, config), config)
    assert average.tolist() == [1.0, -1.0, 0.25]


def test_encoding_appends_the_weight_and_reduces_mod_field() -> None:
    config = SecureAggregationConfig(field_bits=40)
    encoded = quantize(np.array([-1.0]), 7, config)
    assert encoded.tolist() == [2**40 - 7 * 2**24 // 8, 7]


@pytest.mark.parametrize(
    "update, weight",
    [(np.array([np.nan]), 1), (np.array([[1.0]]), 1), (np.array([1.0]), -1), (np.ones(2), 1.5)],
)
def test_refuses_malformed_updates_and_weights(update: np.ndarray, weight: object) -> None:
    with pytest.raises(SecureAggregationError):
        quantize(update, weight, SecureAggregationConfig())  # type: ignore[arg-type]


def test_refuses_weight_above_max_weight_naming_the_key() -> None:
    with pytest.raises(SecureAggregationError, match="secure_aggregation.max_weight"):
        quantize(np.ones(2), 11, SecureAggregationConfig(max_weight=10))


def test_overflow_check_names_the_config_keys_and_a_fix() -> None:
    # 64 · 2^16 · 2^q < 2^49 holds up to q = 26.
    with pytest.raises(SecureAggregationError, match="secure_aggregation.field_bits") as error:
        check_no_overflow(
            num_hospitals=64,
            max_weight=2**16,
            clipping_range=8.0,
            quantization_bits=30,
            field_bits=50,
        )
    assert "secure_aggregation.quantization_bits ≤ 26" in str(error.value)


def test_overflow_check_is_exact_at_the_boundary() -> None:
    # n · w · 2^q = 2^(field_bits − 1) wraps the sign; one less hospital does not.
    args = {"max_weight": 2**10, "clipping_range": 1.0, "quantization_bits": 20}
    check_no_overflow(num_hospitals=2**9 - 1, field_bits=40, **args)
    with pytest.raises(SecureAggregationError):
        check_no_overflow(num_hospitals=2**9, field_bits=40, **args)


def test_largest_allowed_sum_decodes_without_wrapping() -> None:
    config = SecureAggregationConfig(field_bits=40, quantization_bits=20, max_weight=2**10)
    num_hospitals = 2**9 - 1
    config.check_for(num_hospitals)
    for value in (1.0, -1.0):
        encoded = quantize(np.array([value * config.clipping_range]), config.max_weight, config)
        total = encoded * np.uint64(num_hospitals) & np.uint64(2**40 - 1)
        average, weight = dequantize(total, config)
        assert average.tolist() == [value * config.clipping_range]
        assert weight == num_hospitals * config.max_weight


def test_default_config_fits_thousands_of_hospitals() -> None:
    SecureAggregationConfig().check_for(10_000)


def test_long_update_encodes_element_by_element_as_the_formula_says() -> None:
    config = SecureAggregationConfig()
    values = np.random.default_rng(3).normal(scale=4.0, size=70_001)  # several chunks
    weight = 321
    factor = weight * 2.0**config.quantization_bits / config.clipping_range
    bound = config.clipping_range
    expected = [round(min(max(v, -bound), bound) * factor) % 2**62 for v in values.tolist()]
    encoded = quantize(values, weight, config)
    assert encoded.tolist() == [*expected, weight]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_anywhere_is_refused(bad: float) -> None:
    values = np.zeros(70_001)
    values[-2] = bad  # in the last chunk, where clipping alone would hide an inf
    with pytest.raises(SecureAggregationError, match="NaN or infinite"):
        quantize(values, 1, SecureAggregationConfig())


@pytest.mark.parametrize("field_bits", [8, 40, 62])
def test_decoding_is_the_twos_complement_value_mod_2_to_the_field_bits(field_bits: int) -> None:
    config = SecureAggregationConfig(field_bits=field_bits, quantization_bits=1, max_weight=3)
    field_sum = np.random.default_rng(field_bits).integers(0, 2**64 - 1, 1_000, dtype=np.uint64)
    field_sum[-1] = 7  # the weight sum
    before = field_sum.copy()
    average, total_weight = dequantize(field_sum, config)
    assert np.array_equal(field_sum, before)  # the sum is not changed
    signed = []
    for x in field_sum[:-1].tolist():
        x %= 2**field_bits
        signed.append(x - 2**field_bits if x >= 2 ** (field_bits - 1) else x)
    units = 2.0**config.quantization_bits / config.clipping_range
    assert total_weight == 7
    assert average.tolist() == [s / (units * 7) for s in signed]
