import dataclasses

import pytest
from flwr.app import ConfigRecord

from medfed.shared.errors import ProtocolError
from medfed.shared.hospital_report import (
    RELEASED_FIELDS,
    EvaluationReport,
    TrainingReport,
    registered,
)


@pytest.mark.parametrize("report", [TrainingReport, EvaluationReport])
def test_every_report_field_is_declared_or_dp_in_the_registry(report):
    names = {f.name for f in dataclasses.fields(report)}
    assert names == registered(report.record_name)


def test_every_registered_field_says_dp_or_declared_and_why():
    for field in RELEASED_FIELDS:
        assert field.release in {"dp", "declared"} and len(field.why) > 20


def test_a_record_with_an_undeclared_field_is_a_protocol_error():
    record = ConfigRecord({"num_examples": 10.0, "train_loss": 0.3})
    with pytest.raises(ProtocolError, match="train_loss"):
        TrainingReport.from_record(record)


def test_a_non_number_in_a_numeric_field_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="accuracy"):
        EvaluationReport.from_record(ConfigRecord({"num_examples": 3.0, "accuracy": "high"}))


def test_reports_round_trip_through_their_records():
    report = TrainingReport(num_examples=12.5, steps=3.0, delta=1e-7, accountant="prv")
    assert TrainingReport.from_record(report.to_record()) == report
