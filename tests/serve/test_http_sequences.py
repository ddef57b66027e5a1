"""The vitals models over HTTP, on real uvicorn: charts in, the training grid's probability out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medfed.serve.explain import log_odds
from medfed.shared.data.registry import load_federation
from medfed.shared.data.sequences import vitals_frame_to_grids
from medfed.shared.data.vitals_synthetic import synthetic_vitals
from medfed.shared.models import build_model

from .conftest import untrained_run

pytestmark = pytest.mark.slow  # the modules train a run and start uvicorn (conftest.py)


def independent_model(served) -> torch.nn.Module:
    """The run's model rebuilt from the registry and model.pt, apart from the server's."""
    state = torch.load(served.bundle.root / "model.pt", weights_only=True)
    model = build_model(served.bundle.run.model, served.bundle.schema.input_shape, 2)
    model.load_state_dict(state)
    return model.eval()


def training_rows(run) -> tuple[pd.DataFrame, np.ndarray]:
    """The run's own synthetic rows and the grids the data pipeline builds from them."""
    data = run.data
    frame = synthetic_vitals(
        data.samples, data.sequence_length, data.sequence_features, run.seed,
        data.num_hospitals or 1, data.sequence_step,
    )  # fmt: skip
    grids, _, _ = vitals_frame_to_grids(
        frame, "synthetic vitals", data.sequence_length, data.sequence_step, "hospital",
        data.channel_ranges,
    )  # fmt: skip
    return frame, grids


def chart(rows: pd.DataFrame) -> dict[str, list]:
    """One patient's long rows as the API's chart: times, and per channel a value or null."""
    wide = rows.pivot(index="time", columns="channel", values="value").sort_index()
    body: dict[str, list] = {"time": [float(t) for t in wide.index]}
    for channel in wide.columns:
        body[channel] = [None if np.isnan(v) else float(v) for v in wide[channel]]
    return body


def servable(frame: pd.DataFrame, ranges: dict) -> list[int]:
    """Indices of patients whose readings all lie in their channel's range (the API refuses
    others, training clips them) and whose times are distinct per channel."""
    keep = []
    for index, (_, rows) in enumerate(frame.groupby("patient", sort=False)):
        low = rows["channel"].map(lambda c: ranges[c][0])
        high = rows["channel"].map(lambda c: ranges[c][1])
        inside = ((rows["value"] >= low) & (rows["value"] <= high)).all()
        if inside and not rows.duplicated(["time", "channel"]).any():
            keep.append(index)
    return keep


def test_a_patients_chart_gets_the_probability_of_its_training_grid(sequence_server):
    run, schema = sequence_server.bundle.run, sequence_server.bundle.schema
    frame, grids = training_rows(run)
    trained = {
        row.tobytes()
        for hospital in load_federation(run.data, run.seed)
        for row in np.concatenate([hospital.x_train, hospital.x_test])
    }
    assert all(grid.tobytes() in trained for grid in grids)  # these are the training rows
    kept = servable(frame, schema.channel_ranges)
    assert len(kept) >= 20, len(kept)
    patients = list(dict.fromkeys(frame["patient"]))
    charts = [chart(frame[frame["patient"] == patients[i]]) for i in kept[:40]]
    answer = sequence_server.client.post("/v1/predict", json={"sequences": charts})
    assert answer.status_code == 200, answer.text
    with torch.no_grad():
        inputs = torch.from_numpy(grids[kept[:40]])
        expected = torch.softmax(independent_model(sequence_server)(inputs), 1)[:, 1].numpy()
    got = np.array([row["probability"] for row in answer.json()["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def explained_matches(served) -> None:
    """IG over the grid: per channel and step, adding up to the log-odds over the baseline."""
    run, schema = served.bundle.run, served.bundle.schema
    frame, grids = training_rows(run)
    index = servable(frame, schema.channel_ranges)[0]
    patient = list(dict.fromkeys(frame["patient"]))[index]
    answer = served.client.post(
        "/v1/explain", json={"sequence": chart(frame[frame["patient"] == patient])}
    )
    assert answer.status_code == 200, answer.text
    explained = answer.json()["explanations"][0]
    length = run.data.sequence_length
    assert set(explained["attributions"]) == set(schema.channel_names)
    assert {len(v) for v in explained["attributions"].values()} == {length}
    assert explained["steps_before_prediction"][-1] == 0
    assert explained["step_mask_total"] == 0  # the baseline keeps the patient's mask
    grid = torch.from_numpy(grids[index : index + 1])
    start = torch.zeros_like(grid)
    start[..., -1] = grid[..., -1]
    with torch.no_grad():
        model = independent_model(served)
        gap = float(log_odds(model(grid))[0, 1] - log_odds(model(start))[0, 1])
    totals = explained["channel_totals"]
    for name, steps in explained["attributions"].items():
        assert sum(steps) == pytest.approx(totals[name], abs=1e-5)
    assert sum(totals.values()) == pytest.approx(gap, abs=0.02 + 0.05 * abs(gap))


def test_gru_explanations_are_per_channel_and_step(sequence_server):
    explained_matches(sequence_server)


def test_transformer_serves_and_explains(tmp_path, serve_directory):
    directory = untrained_run(tmp_path / "transformer", "transformer",
                              ("data.samples=60", "data.sequence_length=8"))  # fmt: skip
    with serve_directory(directory) as served:
        explained_matches(served)
        schema = served.client.get("/v1/schema").json()
        assert schema["input_shape"] == [8, 9] and schema["sequence_step"] == 1.0
        assert schema["channel_units"]["spo2"] == "%"


def test_bad_charts_get_422_naming_the_problem(sequence_server):
    client = sequence_server.client
    cases = [
        ({"time": [0, 1], "heart_rate": [80, 81], "lactate": [1, 2]}, "unknown channel 'lactate'"),
        ({"time": [0, 1], "heart_rate": [80, 300]}, "sequence.heart_rate.1"),
        ({"time": [1, 0], "heart_rate": [80, 81]}, "strictly increasing"),
        ({"time": []}, "sequence.time"),
    ]
    for body, words in cases:
        answer = client.post("/v1/predict", json={"sequence": body})
        assert answer.status_code == 422, answer.text
        assert words in answer.json()["message"], answer.json()
    nan = '{"sequence": {"time": [0], "heart_rate": [NaN]}}'
    answer = client.post("/v1/predict", content=nan, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert "sequence.heart_rate.0" in [item["field"] for item in answer.json()["detail"]]
    openapi = client.get("/openapi.json").json()["components"]["schemas"]["Sequence"]
    assert "strictly increasing" in openapi["properties"]["time"]["description"]
