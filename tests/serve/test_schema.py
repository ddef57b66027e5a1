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


def test_sequence_requests_are_scaled_like_the_vitals_csv(tmp_path):
    """A patient sent as arrays gets the features read_vitals_csv gives the same series."""
    length = 6
    rows = []
    series = {
        "heart_rate": np.linspace(70, 130, length), "resp_rate": np.linspace(12, 30, length),
        "spo2": np.linspace(98, 86, length), "systolic_bp": np.linspace(130, 85, length),
    }  # fmt: skip
    for channel, values in series.items():
        rows += [{"patient": "p1", "time": t, "channel": channel, "value": v, "label": 1}
                 for t, v in enumerate(values)]  # fmt: skip
    path = tmp_path / "vitals.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    expected, _, _ = read_vitals_csv(path, length, "hospital")
    run = RunConfig.model_validate(
        {
            "data": {
                "dataset": "sequences",
                "path": str(path),
                "sequence_length": length,
                "partition": "iid",
                "num_hospitals": 1,
            },
            "model": {"name": "gru"},
        }  # fmt: skip
    )
    schema = input_schema(run, 2)
    predict, _ = request_models(schema)
    body = {"sequence": {name: list(map(float, values)) for name, values in series.items()}}
    served = Preprocessor(run, schema)(items(predict.model_validate(body), schema)).numpy()
    np.testing.assert_array_equal(served, expected)


def test_unknown_dataset_model_pairs_are_refused_by_name():
    from medfed.shared.errors import ConfigError

    run = RunConfig.model_validate({"data": {"dataset": "sequences", "partition": "iid",
                                             "num_hospitals": 2}})  # fmt: skip
    with pytest.raises(ConfigError, match="model.name = 'logistic'"):
        input_schema(run, 2)
