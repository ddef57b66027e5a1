"""Request models and preprocessing without a server: fast, no training run needed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from medfed.serve.inputs import input_schema
from medfed.serve.preprocess import Preprocessor
from medfed.serve.schema import items, request_models
from medfed.shared.config.models import RunConfig
from medfed.shared.data.heart_disease import encode, load_heart_disease, packaged_csv
from medfed.shared.data.sequences import read_vitals_csv

RUN = RunConfig()  # the heart-disease defaults


def csv_records() -> list[dict]:
    """Every complete row of the packaged UCI file, written as a clinician's request record."""
    frame = pd.read_csv(packaged_csv())
    _, _, kept = encode(frame, packaged_csv())
    records = []
    for _, row in frame.loc[kept].iterrows():
        records.append({
            "age": float(row["age"]), "sex": str(row["sex"]).lower(),
            "trestbps": max(60.0, float(row["trestbps"])), "chol": max(50.0, float(row["chol"])),
            "fbs": bool(row["fbs"]), "thalch": float(row["thalch"]), "exang": bool(row["exang"]),
            "oldpeak": float(row["oldpeak"]), "cp": str(row["cp"]).lower(),
            "restecg": str(row["restecg"]).lower(),
        })  # fmt: skip
    return records


def test_serving_features_are_training_features_for_every_uci_row():
    """Unmeasured cholesterol (0) enters as its lower bound, where training clips it."""
    schema = input_schema(RUN, 2)
    predict, _ = request_models(schema)
    request = predict.model_validate({"records": csv_records()[:256]})
    request_more = predict.model_validate({"records": csv_records()[256:512]})
    served = np.concatenate(
        [Preprocessor(RUN, schema)(items(r, schema)).numpy() for r in (request, request_more)]
    )
    trained = np.concatenate(
        [np.concatenate([h.x_train, h.x_test]) for h in load_heart_disease(None, "dataset")]
    )
    assert len(served) == min(512, len(trained))
    trained_rows = {row.tobytes() for row in trained}
    assert all(row.tobytes() in trained_rows for row in served)


def test_configured_bounds_reach_validation_and_scaling():
    run = RunConfig.model_validate({"data": {"feature_bounds": {"chol": [100, 400]}}})
    schema = input_schema(run, 2)
    predict, _ = request_models(schema)
    record = {"age": 50, "sex": "male", "trestbps": 120, "chol": 400, "fbs": False,
              "thalch": 150, "exang": False, "oldpeak": 0, "cp": "asymptomatic",
              "restecg": "normal"}  # fmt: skip
    features = Preprocessor(run, schema)(items(predict.model_validate({"record": record}), schema))
    assert features[0, 3].item() == 1.0  # chol at the configured upper bound
    with pytest.raises(ValidationError) as error:
        predict.model_validate({"record": record | {"chol": 401}})
    assert error.value.errors()[0]["loc"] == ("record", "chol")
    with pytest.raises(ValidationError) as error:
        predict.model_validate({"record": record | {"age": math.nan}})
    assert error.value.errors()[0]["loc"] == ("record", "age")


CHART = {  # two patients as charts: times in hours, null where a channel was not measured
    "p1": {"time": [0.0, 0.7, 2.2, 3.0, 5.5, 7.9, 8.1],
           "heart_rate": [88, 92, None, 104, 118, None, 131],
           "resp_rate": [16, None, 18, 22, None, 27, 30],
           "spo2": [97, 96, None, 93, 91, None, 88],
           "lactate": [None, None, 1.8, None, None, 4.2, None]},
    "p2": {"time": [-12.0, 1.0, 1.5],
           "heart_rate": [70, 72, 71], "systolic_bp": [135, None, 128]},
    "p3": {"time": [0.0, 1.0], "resp_rate": [20, 21]},
}  # fmt: skip
SEQUENCE_RUN = {
    "dataset": "sequences", "sequence_length": 6, "sequence_step": 1.5, "partition": "iid",
    "num_hospitals": 1, "channel_ranges": {"lactate": [0, 20], "heart_rate": [30, 150]},
}  # fmt: skip


def sequence_schema(**data):
    run = RunConfig.model_validate(
        {"data": SEQUENCE_RUN | data, "model": {"name": "gru"}}
    )  # fmt: skip
    return run, input_schema(run, 2)


def test_sequence_requests_are_gridded_like_the_vitals_csv(tmp_path):
    """Patients sent as charts get the grids read_vitals_csv gives the same readings."""
    rows = [
        {"patient": patient, "time": time, "channel": channel, "value": value, "label": 1}
        for patient, chart in CHART.items()
        for channel, values in chart.items() if channel != "time"
        for time, value in zip(chart["time"], values, strict=True) if value is not None
    ]  # fmt: skip
    path = tmp_path / "vitals.csv"
    shuffled = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # rows in any order,
    shuffled.sort_values("patient", kind="stable").to_csv(path, index=False)  # patients p1-p3
    run, schema = sequence_schema(path=str(path))
    expected, _, _ = read_vitals_csv(path, 6, "hospital", run.data.channel_ranges, 1.5)
    assert schema.input_shape == expected.shape[1:] == (6, 11)  # 5 channels × 2 + mask
    assert schema.channel_names == ("heart_rate", "lactate", "resp_rate", "spo2", "systolic_bp")
    predict, _ = request_models(schema)
    request = predict.model_validate({"sequences": list(CHART.values())})
    served = Preprocessor(run, schema)(items(request, schema)).numpy()
    np.testing.assert_array_equal(served, expected)
    # p2's reading 12 h before the window carries into it: every step real, heart rate 70 in
    # [30, 150] scales to -1/3 from the first step; p3's stay fits in the last step
    assert served[1, :, -1].tolist() == [1] * 6 and served[1, 0, 0] == pytest.approx(-1 / 3)
    assert served[2, :, -1].tolist() == [0, 0, 0, 0, 0, 1]


BAD_CHARTS = [
    ("unknown channel", {"lactate_x": [1.0]}, "sequence", "unknown channel 'lactate_x'"),
    ("NaN", {"heart_rate": [math.nan]}, "sequence.heart_rate.0", "finite"),
    ("infinite time", {"time": [math.inf]}, "sequence.time.0", "finite"),
    ("out of range", {"heart_rate": [151.0]}, "sequence.heart_rate.0", "150"),
    ("empty", {"time": [], "heart_rate": []}, "sequence.time", "at least 1"),
    ("no reading", {"heart_rate": [None]}, "sequence", "time 0 has no reading"),
    ("not increasing", {"time": [0.0, 2.0, 2.0], "spo2": [97, 96, 95]}, "sequence.time",
     "strictly increasing"),
    ("wrong length", {"time": [0.0, 1.0], "spo2": [97]}, "sequence.spo2", "1 values for 2"),
    ("too many", {"time": [float(t) for t in range(1001)], "spo2": [97] * 1001},
     "sequence.time", "at most 1000"),
]  # fmt: skip


@pytest.mark.parametrize("what, change, loc, words", BAD_CHARTS, ids=[b[0] for b in BAD_CHARTS])
def test_bad_charts_are_refused_naming_the_field(what, change, loc, words):
    _, schema = sequence_schema()
    predict, _ = request_models(schema)
    with pytest.raises(ValidationError) as error:
        predict.model_validate({"sequence": {"time": [0.0]} | change})
    problems = [(".".join(map(str, p["loc"])), p["msg"]) for p in error.value.errors()]
    assert any(place == loc and words in message for place, message in problems), problems


def test_unknown_dataset_model_pairs_are_refused_by_name():
    from medfed.shared.errors import ConfigError

    run = RunConfig.model_validate({"data": {"dataset": "sequences", "partition": "iid",
                                             "num_hospitals": 2}})  # fmt: skip
    with pytest.raises(ConfigError, match="model.name = 'logistic'"):
        input_schema(run, 2)
