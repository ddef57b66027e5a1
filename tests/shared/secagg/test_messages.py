"""Messages map onto Flower record types, and malformed ones are refused, never crash."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import (
    MaskedUpload,
    Roster,
    SetupAdvertisement,
    UnmaskRequest,
    UnmaskResponse,
)

PLAIN_TYPES = (str, int, float, bytes, np.ndarray)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=40),
    st.lists(st.integers(-5, 5), max_size=3),
    st.lists(st.binary(max_size=40), max_size=3),
    st.builds(lambda n: np.arange(n, dtype=np.int32), st.integers(0, 3)),
)


def one_round(make_federation):
    federation = make_federation(5)
    updates = federation.updates(length=6)
    federation.coordinator.begin_round(1)
    uploads = {u: federation.hospitals[u].mask_update(*updates[u], 1) for u in federation.ids}
    for upload in uploads.values():
        federation.coordinator.receive_upload(upload)
    requests = federation.coordinator.unmask_requests()
    return federation, uploads, requests


def assert_plain(data: dict) -> None:
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        assert all(isinstance(item, PLAIN_TYPES) for item in items), key
        assert not any(isinstance(item, bool) for item in items), key


def test_every_message_round_trips_through_plain_dicts(make_federation) -> None:
    federation, uploads, requests = one_round(make_federation)
    hospital = federation.hospitals[requests[0].hospital_id]
    messages = [
        hospital.advertise(),
        federation.coordinator.roster(),
        uploads[federation.ids[0]],
        requests[0],
        hospital.unmask(requests[0]),
    ]
    for message in messages:
        data = message.to_dict()
        assert_plain(data)
        again = type(message).from_dict(data).to_dict()
        assert again.keys() == data.keys()
        for key in data:
            if isinstance(data[key], np.ndarray):
                assert np.array_equal(again[key], data[key])
            else:
                assert again[key] == data[key]


@pytest.mark.parametrize(
    "kind", [SetupAdvertisement, Roster, MaskedUpload, UnmaskRequest, UnmaskResponse]
)
def test_missing_field_is_named(kind) -> None:
    with pytest.raises(SecureAggregationError, match="missing field"):
        kind.from_dict({})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_hospital_refuses_any_malformed_unmask_request_with_a_typed_error(
    make_federation, data: st.DataObject
) -> None:
    federation, _, requests = one_round(make_federation)
    request = data.draw(st.sampled_from(requests)).to_dict()
    hospital = federation.hospitals[request["hospital_id"]]
    key = data.draw(st.sampled_from(sorted(request)))
    if data.draw(st.booleans()):
        del request[key]
    else:
        request[key] = data.draw(junk.filter(lambda value: not _equal(value, request[key])))
    with pytest.raises(SecureAggregationError):
        hospital.unmask(request)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_hospital_never_crashes_on_a_malformed_roster(make_federation, data: st.DataObject) -> None:
    federation = make_federation(4)
    roster = federation.coordinator.roster().to_dict()
    key = data.draw(st.sampled_from(sorted(roster)))
    roster[key] = data.draw(junk.filter(lambda value: not _equal(value, roster[key])))
    hospital = federation.hospitals[federation.ids[0]]
    fresh = hospital.__class__.from_state_dict(
        {**hospital.state_dict(), "roster": None}, hospital.identity
    )
    try:
        fresh.join(roster)  # a changed run_seed is still a well-formed roster (the
    except SecureAggregationError:  # consistency check catches it if others got another)
        pass
    else:
        assert key == "run_seed"


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_coordinator_refuses_any_malformed_upload_with_a_typed_error(
    make_federation, data: st.DataObject
) -> None:
    federation = make_federation(4)
    federation.coordinator.begin_round(1)
    upload = federation.hospitals[federation.ids[0]].mask_update(np.ones(3), 2, 1).to_dict()
    key = data.draw(st.sampled_from(sorted(upload)))
    upload[key] = data.draw(junk.filter(lambda value: not _equal(value, upload[key])))
    with pytest.raises(SecureAggregationError):
        federation.coordinator.receive_upload(upload)


def test_coordinator_refuses_uploads_with_foreign_receivers_or_lengths(make_federation) -> None:
    federation = make_federation(6, neighbours=2)
    federation.coordinator.begin_round(1)
    first, second = (federation.hospitals[u] for u in federation.ids[:2])
    federation.coordinator.receive_upload(first.mask_update(np.ones(3), 2, 1))
    upload = second.mask_update(np.ones(4), 2, 1)
    with pytest.raises(SecureAggregationError, match="length"):
        federation.coordinator.receive_upload(upload)
    swapped = {**upload.to_dict(), "share_receivers": list(reversed(upload.share_receivers))}
    with pytest.raises(SecureAggregationError, match="neighbours"):
        federation.coordinator.receive_upload(swapped)


def _equal(left: object, right: object) -> bool:
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        return False
    return type(left) is type(right) and left == right
