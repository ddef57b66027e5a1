"""Secure-aggregation messages ⇄ Flower records.

Integers travel as decimal text (Flower node ids can exceed a signed 64-bit int), numpy
arrays in an ArrayRecord, everything else (bytes, floats, text, lists) as ConfigRecord values.
Arrays are model-sized: `to_array` writes the same .npy bytes as `Array(ndarray)` with one
copy instead of three, and `array_values` reads them as a read-only view, without a copy.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from numpy.lib import format as npy

from medfed.shared.errors import SecureAggregationError

INT_PREFIX = "int:"
NUMPY_STYPE = "numpy.ndarray"  # Flower's name for .npy bytes (`Array(ndarray).stype`)


def to_array(values: np.ndarray) -> Array:
    """`values` as a Flower Array, byte for byte what `Array(values)` holds (np.save's format)."""
    values = np.ascontiguousarray(values)
    if values.dtype.hasobject:
        raise SecureAggregationError(f"cannot send an array of {values.dtype} (objects)")
    header = io.BytesIO()
    npy.write_array_header_1_0(header, npy.header_data_from_array_1_0(values))
    data = b"".join((header.getvalue(), values.reshape(-1).view(np.uint8)))
    return Array(dtype=str(values.dtype), shape=tuple(values.shape), stype=NUMPY_STYPE, data=data)


def array_values(array: Array) -> np.ndarray:
    """A read-only numpy view of a Flower Array's .npy bytes (what `array.numpy()` copies).

    Raises:
        SecureAggregationError: not .npy bytes, an object dtype, or a truncated array.
    """
    if array.stype != NUMPY_STYPE or not isinstance(array.data, bytes):
        raise SecureAggregationError(f"an array is serialised as '{array.stype}', not .npy")
    stream = io.BytesIO(array.data)
    try:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
        if dtype.hasobject:
            raise ValueError("object arrays are refused")
        count = int(np.prod(shape, dtype=np.int64))
        flat = np.frombuffer(array.data, dtype=dtype, count=count, offset=stream.tell())
    except ValueError as error:
        raise SecureAggregationError(f"a malformed array in the message: {error}") from None
    return flat.reshape(shape, order="F" if fortran_order else "C")


def to_records(message: dict[str, Any], name: str) -> RecordDict:
    """Records `name` (ConfigRecord) and `name` + ".arrays" (ArrayRecord, if any arrays)."""
    config: dict[str, Any] = {}
    arrays: dict[str, Array] = {}
    for key, value in message.items():
        if isinstance(value, np.ndarray):
            arrays[key] = to_array(value)
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
        message |= {key: array_values(array) for key, array in arrays.items()}
    return message
