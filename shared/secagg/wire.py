"""Readers that check one field of an incoming message dict and explain what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medfed.shared.errors import SecureAggregationError

MAX_INT = 2**64 - 1


def _get(data: Mapping[str, Any], message: str, key: str) -> Any:
    if not isinstance(data, Mapping):
        raise SecureAggregationError(f"{message}: expected a mapping, got {type(data).__name__}")
    if key not in data:
        raise SecureAggregationError(f"{message}: missing field '{key}'")
    return data[key]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def read_int(data: Mapping[str, Any], message: str, key: str) -> int:
    """A non-negative integer below 2^64."""
    value = _get(data, message, key)
    if not _is_int(value) or not 0 <= int(value) <= MAX_INT:
        raise SecureAggregationError(f"{message}: '{key}' must be a non-negative integer")
    return int(value)


def read_float(data: Mapping[str, Any], message: str, key: str) -> float:
    """A finite float (ints accepted)."""
    value = _get(data, message, key)
    if not isinstance(value, float | int) or isinstance(value, bool) or not np.isfinite(value):
        raise SecureAggregationError(f"{message}: '{key}' must be a finite number")
    return float(value)


def read_str(data: Mapping[str, Any], message: str, key: str) -> str:
    """A string."""
    value = _get(data, message, key)
    if not isinstance(value, str):
        raise SecureAggregationError(f"{message}: '{key}' must be a string")
    return value


def read_bytes(data: Mapping[str, Any], message: str, key: str, length: int | None = None) -> bytes:
    """Bytes, of exactly `length` if given."""
    value = _get(data, message, key)
    if not isinstance(value, bytes) or (length is not None and len(value) != length):
        size = f" of {length} bytes" if length is not None else ""
        raise SecureAggregationError(f"{message}: '{key}' must be bytes{size}")
    return value


def read_int_list(
    data: Mapping[str, Any], message: str, key: str, *, distinct: bool = True
) -> list[int]:
    """A list of non-negative integers below 2^64, distinct unless told otherwise."""
    value = _get(data, message, key)
    if not isinstance(value, list | tuple) or not all(
        _is_int(item) and 0 <= int(item) <= MAX_INT for item in value
    ):
        raise SecureAggregationError(f"{message}: '{key}' must be a list of non-negative ints")
    items = [int(item) for item in value]
    if distinct and len(set(items)) != len(items):
        raise SecureAggregationError(f"{message}: '{key}' lists the same id twice")
    return items


def read_str_list(data: Mapping[str, Any], message: str, key: str) -> list[str]:
    """A list of distinct non-empty strings."""
    value = _get(data, message, key)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise SecureAggregationError(f"{message}: '{key}' must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise SecureAggregationError(f"{message}: '{key}' lists the same name twice")
    return list(value)


def read_bytes_list(
    data: Mapping[str, Any], message: str, key: str, length: int | None = None
) -> list[bytes]:
    """A list of bytes, each of exactly `length` if given."""
    value = _get(data, message, key)
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, bytes) and (length is None or len(item) == length) for item in value
    ):
        size = f" of {length} bytes each" if length is not None else ""
        raise SecureAggregationError(f"{message}: '{key}' must be a list of bytes{size}")
    return list(value)


def read_vector(data: Mapping[str, Any], message: str, key: str) -> np.ndarray:
    """A non-empty 1-D uint64 numpy array."""
    value = _get(data, message, key)
    if not isinstance(value, np.ndarray) or value.dtype != np.uint64 or value.ndim != 1:
        raise SecureAggregationError(f"{message}: '{key}' must be a 1-D uint64 numpy array")
    if value.size == 0:
        raise SecureAggregationError(f"{message}: '{key}' is empty")
    return value


def check_same_length(message: str, **lists: list[Any]) -> None:
    """Parallel lists must have one entry each."""
    lengths = {name: len(items) for name, items in lists.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise SecureAggregationError(f"{message}: parallel lists differ in length ({detail})")
