"""The heart-disease model over HTTP: real uvicorn on 127.0.0.1, httpx clients."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from medfed.shared.data.heart_disease import FEATURE_BOUNDS, FEATURE_NAMES, encode, scale_features

pytestmark = pytest.mark.slow  # each module trains a run with `medfed simulate` (conftest.py)

RECORD = {
    "age": 54, "sex": "male", "trestbps": 130, "chol": 246, "fbs": False, "thalch": 150,
    "exang": True, "oldpeak": 1.4, "cp": "asymptomatic", "restecg": "lv hypertrophy",
}  # fmt: skip


def training_features(records: list[dict]) -> np.ndarray:
    """Golden features: training's CSV path (`encode` on a DataFrame, then `scale_features`)."""
    frame = pd.DataFrame([r | {"num": 0} for r in records])
    raw, _, _ = encode(frame, Path("golden.csv"))
    return scale_features(raw, FEATURE_BOUNDS)[0]


def weights(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    state = torch.load(run_dir / "model.pt", weights_only=True)
    return state["1.weight"].double().numpy(), state["1.bias"].double().numpy()


def variants() -> list[dict]:
    return [
        RECORD,
        RECORD | {"age": 38, "sex": "female", "cp": "non-anginal", "exang": False},
        RECORD | {"chol": 50, "trestbps": 240, "restecg": "normal", "oldpeak": -5},
        RECORD | {"thalch": 202, "fbs": True, "cp": "typical angina", "oldpeak": 10},
    ]


def test_predictions_equal_the_weights_applied_to_training_features(heart_server, heart_run):
    w, b = weights(heart_run)
    logits = training_features(variants()) @ w.T + b
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    batch = heart_server.client.post("/v1/predict", json={"records": variants()})
    assert batch.status_code == 200, batch.text
    rows = batch.json()["predictions"]
    assert [r["probability"] for r in rows] == pytest.approx(expected, abs=2e-6)
    for row, p in zip(rows, expected, strict=True):  # the fixture serves with threshold 0.4
        assert row["positive"] == (p >= 0.4)
        assert row["decision"] == ("heart disease" if p >= 0.4 else "no heart disease")
    single = heart_server.client.post("/v1/predict", json={"record": RECORD}).json()
    assert single["predictions"][0] == rows[0] and single["threshold"] == 0.4


def test_integrated_gradients_equal_the_linear_contributions(heart_server, heart_run):
    w, _ = weights(heart_run)
    x = training_features([RECORD])[0]
    contribution = (w[1] - w[0]) * x  # exact IG of a linear log-odds from a zero baseline
    answer = heart_server.client.post("/v1/explain", json={"record": RECORD})
    assert answer.status_code == 200, answer.text
    explained = answer.json()["explanations"][0]
    features = explained["feature_attributions"]
    assert [features[n] for n in FEATURE_NAMES] == pytest.approx(contribution, abs=1e-5)
    grouped = explained["attributions"]
    assert set(grouped) == set(RECORD)
    cp = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith("cp_")]
    assert grouped["cp"] == pytest.approx(contribution[cp].sum(), abs=1e-5)
    assert "midpoint of their public range" in explained["baseline"]


BAD = [
    ("malformed JSON", b'{"record": {"age": 54,', 400, "body"),
    ("missing field", {"record": {k: v for k, v in RECORD.items() if k != "chol"}}, 422,
     "record.chol"),
    ("NaN", b'{"record": ' + json.dumps(RECORD).replace("54", "NaN").encode() + b"}", 422,
     "record.age"),
    ("out of range", {"record": RECORD | {"trestbps": 300}}, 422, "record.trestbps"),
    ("unknown field", {"record": RECORD | {"smoker": True}}, 422, "record.smoker"),
    ("unknown level", {"record": RECORD | {"cp": "crushing"}}, 422, "record.cp"),
    ("text number", {"record": RECORD | {"age": "old"}}, 422, "record.age"),
    ("record and records", {"record": RECORD, "records": [RECORD]}, 422, "body"),
    ("empty batch", {"records": []}, 422, "records"),
    ("bad batch item", {"records": [RECORD, RECORD | {"oldpeak": 11}]}, 422, "records.1.oldpeak"),
]  # fmt: skip


@pytest.mark.parametrize("what, body, status, field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx_naming_the_field(heart_server, what, body, status, field):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    for path in ("/v1/predict", "/v1/explain"):
        answer = heart_server.client.post(
            path, content=content, headers={"content-type": "application/json"}
        )
        assert answer.status_code == status, answer.text
        problem = answer.json()
        if status == 422:
            assert field in [item["field"] for item in problem["detail"]], problem
            assert field in problem["message"]
        assert "Traceback" not in answer.text


def test_a_body_not_sent_as_json_gets_422_naming_the_body(heart_server):
    content = json.dumps({"record": RECORD}).encode()
    for headers in ({"content-type": "text/plain"}, {}):
        answer = heart_server.client.post("/v1/predict", content=content, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["field"] == "body"
        assert "application/json" in answer.json()["message"]
    typed = {"content-type": "application/json; charset=utf-8"}
    assert heart_server.client.post("/v1/predict", content=content, headers=typed).is_success


def test_oversized_bodies_get_413_with_or_without_content_length(heart_server):
    big = {"records": [RECORD] * 600}  # > the fixture's 64 KiB limit
    answer = heart_server.client.post("/v1/predict", json=big)
    assert answer.status_code == 413 and "--max-body-bytes" in answer.json()["detail"]

    def chunks():
        data = json.dumps(big).encode()
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    streamed = heart_server.client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_a_burst_of_bad_requests_then_good_ones_are_all_answered(heart_server):
    async def burst() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=heart_server.url, timeout=60) as client:
            as_json = {"content-type": "application/json"}
            bad = [
                client.post("/v1/predict", content=b"{not json", headers=as_json),
                client.post("/v1/predict", json={"record": RECORD | {"age": -1}}),
                client.post("/v1/explain", json={"records": [{"age": 1}]}),
                client.post("/v1/predict", content=b"\xff\xfe" * 100),
            ] * 40  # fmt: skip
            first = await asyncio.gather(*bad)
            good = await asyncio.gather(
                *[client.post("/v1/predict", json={"record": RECORD}) for _ in range(32)]
            )
            return [r.status_code for r in first], [r.status_code for r in good]

    bad_codes, good_codes = asyncio.run(burst())
    assert len(bad_codes) == 160 and all(400 <= code < 500 for code in bad_codes)
    assert good_codes == [200] * 32
    assert heart_server.client.get("/healthz").json()["status"] == "ok"


def test_api_key_guards_the_api_but_not_health(heart_run, serve_directory):
    key = "k" * 24
    with serve_directory(heart_run, api_key=key) as served:
        assert served.client.post("/v1/predict", json={"record": RECORD}).status_code == 401
        wrong = served.client.post("/v1/predict", json={"record": RECORD},
                                   headers={"x-api-key": "x" * 24})  # fmt: skip
        assert wrong.status_code == 401
        right = served.client.post("/v1/predict", json={"record": RECORD},
                                   headers={"x-api-key": key})  # fmt: skip
        assert right.status_code == 200
        assert served.client.get("/v1/model-card").status_code == 401
        assert served.client.get("/healthz").status_code == 200


def test_request_log_holds_method_path_status_latency_only(heart_server):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("medfed.serve.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        heart_server.client.post("/v1/predict", json={"record": RECORD | {"chol": 321.25}})
        heart_server.client.post("/v1/predict", json={"record": RECORD | {"chol": 987.75}})
    finally:
        logger.removeHandler(handler)
    assert len(lines) == 2
    assert re.fullmatch(r"POST /v1/predict 200 [0-9.]+ ms", lines[0])
    assert re.fullmatch(r"POST /v1/predict 422 [0-9.]+ ms", lines[1])
    assert not any("321" in line or "987" in line for line in lines)


def test_card_schema_and_docs_are_served(heart_server):
    card = heart_server.client.get("/v1/model-card").json()
    assert "cost no privacy" in card["privacy"]["post_processing"]
    schema = heart_server.client.get("/v1/schema").json()
    assert schema["threshold"] == 0.4 and schema["kind"] == "tabular"
    assert heart_server.client.get("/docs").status_code == 200
    openapi = heart_server.client.get("/openapi.json").json()
    record = openapi["components"]["schemas"]["Record"]["properties"]
    assert record["age"]["maximum"] == 100 and record["chol"]["minimum"] == 50


def test_medfed_serve_command_serves_over_tls_with_an_api_key(heart_run, tmp_path):
    """The CLI as a user starts it: uvicorn's TLS with a medfed certificate, key from a file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from medfed.shared.crypto.certs import create_ca, create_server_certificate
    from medfed.shared.processes import free_port

    ca = create_ca(tmp_path / "certs")
    create_server_certificate(tmp_path / "certs", tmp_path / "certs", ["127.0.0.1"])
    key_file = tmp_path / "api.key"
    key_file.write_text("a-long-enough-api-key\n")
    port = free_port()
    command = [sys.executable, "-c", "from medfed.simulations.cli import main; main()", "serve",
               str(heart_run), "--port", str(port), "--api-key-file", str(key_file),
               "--ssl-certfile", str(tmp_path / "certs" / "server.crt"),
               "--ssl-keyfile", str(tmp_path / "certs" / "server.key")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(ca)) as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.5)
            headers = {"x-api-key": "a-long-enough-api-key"}
            body = {"record": RECORD | {"chol": 317.75}}
            answer = client.post("/v1/predict", json=body, headers=headers)
            assert answer.status_code == 200 and 0 < answer.json()["predictions"][0]["probability"]
            assert client.post("/v1/predict", json={"record": RECORD}).status_code == 401
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert "POST /v1/predict 200" in output and "POST /v1/predict 401" in output
    assert "317.75" not in output  # the record's cholesterol never reaches the log
