"""Secure-aggregation messages ⇄ Flower records.

Integers travel as decimal text (Flower node ids can exceed a signed 64-bit int), numpy
arrays in an ArrayRecord, everything else (bytes, floats, text, lists) as ConfigRecord values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from medfed.shared.errors import SecureAggregationError

INT_PREFIX = "int:"


def to_records(message: dict[str, Any], name: str) -> RecordDict:
    """Records `name` (ConfigRecord) and `name` + ".arrays" (ArrayRecord, if any arrays)."""
    config: dict[str, Any] = {}
    arrays: dict[str, Array] = {}
    for key, value in message.items():
        if isinstance(value, np.ndarray):
            arrays[key] = Array(np.ascontiguousarray(value))
        elif isinstance(value, bool):
            config[key] = value
        elif isinstance(value, int):
            config[INT_PREFIX + key] = str(value)
        elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            config[INT_PREFIX + key] = [str(v) for v in value]
        else:
            config[key] = value
    records = RecordDict({name: ConfigRecord(config)})
    if arrays:
        records[f"{name}.arrays"] = ArrayRecord(arrays)
    return records


def from_records(content: RecordDict, name: str) -> dict[str, Any]:
    """Inverse of `to_records`.

    Raises:
        SecureAggregationError: the record is absent or an integer field is not an integer.
    """
    if name not in content.config_records:
        raise SecureAggregationError(f"message lacks the '{name}' record")
    message: dict[str, Any] = {}
    try:
        for key, value in content.config_records[name].items():
            if key.startswith(INT_PREFIX):
                field = key[len(INT_PREFIX) :]
                message[field] = [int(v) for v in value] if isinstance(value, list) else int(value)
            else:
                message[key] = value
    except (TypeError, ValueError):
        raise SecureAggregationError(f"'{name}' carries a malformed integer field") from None
    arrays = content.array_records.get(f"{name}.arrays")
    if arrays is not None:
        message |= {key: array.numpy() for key, array in arrays.items()}
    return message
