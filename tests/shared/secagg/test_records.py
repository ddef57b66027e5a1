"""Model-sized arrays cross Flower records as .npy bytes, written and read without copies."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flwr.app import Array

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.records import array_values, from_records, to_array, to_records

ARRAYS = [
    np.arange(10, dtype=np.uint64),
    np.random.default_rng(0).normal(size=(3, 4)),
    np.random.default_rng(1).normal(size=(4, 3)).T,  # not C-contiguous
    np.zeros(0, dtype=np.float32),
    np.ones((2, 2, 2), dtype=np.int8),
]


@pytest.mark.parametrize("values", ARRAYS)
def test_to_array_holds_what_flowers_own_array_holds(values):
    ours, flowers = to_array(values), Array(np.ascontiguousarray(values))
    assert (ours.dtype, ours.shape, ours.stype) == (flowers.dtype, flowers.shape, flowers.stype)
    assert ours.data == flowers.data
    assert np.array_equal(ours.numpy(), values)


@pytest.mark.parametrize("values", ARRAYS)
def test_array_values_is_a_read_only_view_equal_to_numpy(values):
    view = array_values(Array(np.ascontiguousarray(values)))
    assert view.dtype == values.dtype and np.array_equal(view, values)
    assert not view.flags.writeable


def test_fortran_order_npy_bytes_are_read_in_their_order():
    buffer = io.BytesIO()
    values = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np.save(buffer, values)
    array = Array(dtype="float64", shape=(3, 4), stype="numpy.ndarray", data=buffer.getvalue())
    assert np.array_equal(array_values(array), values)


@pytest.mark.parametrize(
    "data",
    [Array(np.arange(6.0)).data[:-8], b"not an npy file at all", b""],
    ids=["truncated", "junk", "empty"],
)
def test_malformed_array_bytes_raise_a_typed_error(data):
    array = Array(dtype="float64", shape=(6,), stype="numpy.ndarray", data=data)
    with pytest.raises(SecureAggregationError, match="malformed array"):
        array_values(array)


def test_object_arrays_are_refused_both_ways():
    with pytest.raises(SecureAggregationError, match="objects"):
        to_array(np.array([None, 1], dtype=object))
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - 10 - len(header)) + b"\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(8)
    array = Array(dtype="object", shape=(1,), stype="numpy.ndarray", data=data)
    with pytest.raises(SecureAggregationError):
        array_values(array)


def test_a_message_round_trips_through_records():
    message = {"hospital_id": 2**63 + 5, "ids": [1, 2], "name": "x", "masked": ARRAYS[0]}
    back = from_records(to_records(message, "secagg.upload"), "secagg.upload")
    assert back.keys() == message.keys()
    assert back["hospital_id"] == message["hospital_id"] and back["ids"] == [1, 2]
    assert np.array_equal(back["masked"], message["masked"])
