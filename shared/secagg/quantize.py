"""Fixed-point encoding of weighted updates into the field Z / 2^field_bits, and its limits.

A value v (clipped to ±clipping_range) of a hospital with weight w becomes the integer
round(w · v · 2^quantization_bits / clipping_range), stored two's-complement mod 2^field_bits.
The weight itself is appended as one more element, so the unmasked sum carries Σw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from medfed.shared.errors import SecureAggregationError

if TYPE_CHECKING:
    from medfed.shared.secagg.config import SecureAggregationConfig

FLOAT_EXACT_BITS = 52
CHUNK_ELEMENTS = 1 << 15  # 256 KiB of float64 scratch: stays in L2


def scale(clipping_range: float, quantization_bits: int) -> float:
    """Integer units per unit of update value: ±clipping_range ↦ ±2^quantization_bits."""
    return 2.0**quantization_bits / clipping_range


def field_mask(field_bits: int) -> np.uint64:
    """All-ones mask of the field: x & mask == x mod 2^field_bits."""
    return np.uint64(2**field_bits - 1)


def check_weight_precision(max_weight: int, quantization_bits: int) -> None:
    """Weighted values must stay within float64's exact integers (2^52) before rounding."""
    if max_weight * 2**quantization_bits > 2**FLOAT_EXACT_BITS:
        raise SecureAggregationError(
            f"secure_aggregation.max_weight ({max_weight}) × 2^quantization_bits "
            f"(2^{quantization_bits}) exceeds 2^{FLOAT_EXACT_BITS}, where float64 stops "
            "rounding exactly; lower secure_aggregation.quantization_bits or max_weight"
        )


def check_no_overflow(
    *,
    num_hospitals: int,
    max_weight: int,
    clipping_range: float,
    quantization_bits: int,
    field_bits: int,
) -> None:
    """Raise `SecureAggregationError` if a sum of `num_hospitals` updates could wrap around.

    The largest |element| of one hospital is max_weight · 2^quantization_bits (a value at
    ±clipping_range); n of them must stay below 2^(field_bits−1) to decode with its sign.
    """
    check_weight_precision(max_weight, quantization_bits)
    if not 8 <= field_bits <= 62:
        raise SecureAggregationError(
            f"secure_aggregation.field_bits = {field_bits} must lie in [8, 62] (uint64 sums)"
        )
    worst = num_hospitals * max_weight * 2**quantization_bits
    limit = 2 ** (field_bits - 1)
    if worst < limit:
        return
    fitting_bits = quantization_bits
    while fitting_bits > 0 and num_hospitals * max_weight * 2**fitting_bits >= limit:
        fitting_bits -= 1
    raise SecureAggregationError(
        f"secure_aggregation: {num_hospitals} hospitals × max_weight {max_weight} × "
        f"2^quantization_bits (2^{quantization_bits}, a value at ±clipping_range "
        f"{clipping_range}) can reach 2^(field_bits−1) = 2^{field_bits - 1} and wrap around; "
        f"set secure_aggregation.quantization_bits ≤ {fitting_bits}, lower "
        "secure_aggregation.max_weight, or raise secure_aggregation.field_bits (at most 62)"
    )


def quantization_error_bound(
    *,
    num_hospitals: int,
    total_weight: int,
    clipping_range: float,
    quantization_bits: int,
    max_weight: int,
) -> float:
    """Largest |decoded weighted average − exact weighted average of the clipped values|.

    Each hospital rounds once (≤ 0.5 unit) after a float64 product whose error is at most
    max_weight · 2^quantization_bits · 2^−51 units; the sum is divided by scale · Σw.
    """
    if total_weight <= 0:
        raise SecureAggregationError("quantization_error_bound: total_weight must be positive")
    units = 0.5 + max_weight * 2.0**quantization_bits * 2.0**-51
    per_value = num_hospitals * units / (scale(clipping_range, quantization_bits) * total_weight)
    return per_value + clipping_range * 2.0**-48


def quantize(update: np.ndarray, weight: int, config: SecureAggregationConfig) -> np.ndarray:
    """`update` (1-D floats) times `weight`, as field elements, with `weight` appended.

    Returns a new uint64 array (the caller may mask it in place); `update` is not changed.
    """
    values = np.asarray(update, dtype=np.float64)
    if values.ndim != 1:
        raise SecureAggregationError(f"update must be a 1-D vector, got shape {values.shape}")
    if isinstance(weight, bool) or not isinstance(weight, int | np.integer):
        raise SecureAggregationError(f"weight must be an integer (num_examples), got {weight!r}")
    if not 0 <= weight <= config.max_weight:
        raise SecureAggregationError(
            f"weight {weight} is outside [0, secure_aggregation.max_weight = "
            f"{config.max_weight}]; raise max_weight (and re-check the field size)"
        )
    factor = float(weight) * scale(config.clipping_range, config.quantization_bits)
    bound = config.clipping_range
    integers = np.empty(values.shape[0] + 1, dtype=np.int64)
    scratch = np.empty(min(CHUNK_ELEMENTS, values.shape[0]), dtype=np.float64)
    for start in range(0, values.shape[0], CHUNK_ELEMENTS):  # chunks stay in cache
        part = values[start : start + CHUNK_ELEMENTS]
        # min and max propagate NaN and reach ±inf (clipping would hide an inf)
        if not (np.isfinite(part.min()) and np.isfinite(part.max())):
            raise SecureAggregationError("update contains NaN or infinite values; nothing was sent")
        scaled = scratch[: part.shape[0]]
        np.clip(part, -bound, bound, out=scaled)
        scaled *= factor
        np.rint(scaled, out=scaled)
        integers[start : start + part.shape[0]] = scaled  # exact: integral, |scaled| ≤ 2^52
    integers[-1] = weight
    encoded = integers.view(np.uint64)
    encoded &= field_mask(config.field_bits)
    return encoded


def dequantize(field_sum: np.ndarray, config: SecureAggregationConfig) -> tuple[np.ndarray, int]:
    """Decode an unmasked sum into (weighted average, total weight); `field_sum` is not changed."""
    # x << (64 − field_bits) keeps the field's bits at the top; an arithmetic >> brings them
    # back sign-extended: the two's-complement value of x mod 2^field_bits
    shift = np.uint64(64 - config.field_bits)
    signed = (np.asarray(field_sum, dtype=np.uint64) << shift).view(np.int64)
    signed >>= np.int64(shift)
    total_weight = int(signed[-1])
    if total_weight <= 0:
        raise SecureAggregationError(
            f"the unmasked weight sum is {total_weight}; no survivor had a positive weight"
        )
    units = scale(config.clipping_range, config.quantization_bits)
    return signed[:-1] / (units * total_weight), total_weight
