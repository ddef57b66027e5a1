"""The clinician page in headless Chromium: the shown prediction is the API's."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from medfed.shared.data.imaging import synthetic_lesions

pytestmark = pytest.mark.slow  # each module trains a run with `medfed simulate` (conftest.py)

RECORD = {
    "age": 61, "sex": "female", "trestbps": 150, "chol": 310, "fbs": True, "thalch": 120,
    "exang": True, "oldpeak": 2.5, "cp": "asymptomatic", "restecg": "st-t abnormality",
}  # fmt: skip


def rendered(url: str, profile) -> str:
    """The DOM after the page's requests finished (virtual time waits for the network)."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium not found: install Debian's `chromium` package (apt-get install -y "
                    "chromium); this test renders the page in a headless browser")  # fmt: skip
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=20000",
        "--dump-dom", url,
    ]  # fmt: skip
    dumped = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    return dumped.stdout


def element(dom: str, id_: str) -> tuple[dict[str, str], str]:
    match = re.search(rf'<(\w+) id="{id_}"([^>]*)>([^<]*)<', dom)
    assert match, f"no #{id_} in the page"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(2))), match.group(3)


def test_page_shows_the_api_prediction_decision_and_bars(heart_server, tmp_path):
    api = heart_server.client.post("/v1/explain", json={"record": RECORD}).json()
    query = urllib.parse.urlencode({"record": json.dumps(RECORD), "run": "1"})
    dom = rendered(f"{heart_server.url}/?{query}", tmp_path / "profile")
    assert element(dom, "status")[1] == "done"
    attributes, shown = element(dom, "probability")
    probability = api["predictions"][0]["probability"]
    assert float(attributes["data-value"]) == probability
    assert shown == f"{probability:.4f}"
    assert element(dom, "decision")[1] == api["predictions"][0]["decision"]
    assert element(dom, "threshold")[1] == "0.4"
    bars = dict(re.findall(r'data-field="(\w+)" data-value="([^"]+)"', dom))
    assert {k: float(v) for k, v in bars.items()} == api["explanations"][0]["attributions"]


def test_page_reports_a_rejected_record_by_field(heart_server, tmp_path):
    query = urllib.parse.urlencode({"record": json.dumps(RECORD | {"chol": 900}), "run": "1"})
    dom = rendered(f"{heart_server.url}/?{query}", tmp_path / "profile")
    assert element(dom, "status")[1] == "failed"
    assert "422" in element(dom, "error")[1] and "record.chol" in element(dom, "error")[1]


def test_page_overlays_the_heat_map_on_an_image(image_server, tmp_path):
    images, _ = synthetic_lesions(1, 16, 1, seed=3)
    buffer = io.BytesIO()
    Image.fromarray(np.rint(images[0, 0] * 255).astype(np.uint8)).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    api = image_server.client.post("/v1/predict", json={"image": {"png": encoded}}).json()
    query = urllib.parse.urlencode({"png": encoded, "run": "1"})
    dom = rendered(f"{image_server.url}/?{query}", tmp_path / "profile")
    assert element(dom, "status")[1] == "done"
    assert (
        float(element(dom, "probability")[0]["data-value"]) == api["predictions"][0]["probability"]
    )
    assert 'data-cells="256"' in dom and '<canvas id="overlay" width="280" height="280">' in dom


CHART = {"time": [0, 1.5, 3, 4.2, 6.5], "heart_rate": [84, 90, None, 104, 117],
         "resp_rate": [16, None, 19, 23, 26], "spo2": [97, 96, 95, None, 91]}  # fmt: skip


def test_page_takes_a_vitals_chart_with_gaps(sequence_server, tmp_path):
    api = sequence_server.client.post("/v1/explain", json={"sequence": CHART}).json()
    query = urllib.parse.urlencode({"sequence": json.dumps(CHART), "run": "1"})
    dom = rendered(f"{sequence_server.url}/?{query}", tmp_path / "profile")
    assert element(dom, "status")[1] == "done", element(dom, "error")
    probability = api["predictions"][0]["probability"]
    assert float(element(dom, "probability")[0]["data-value"]) == probability
    bars = dict(re.findall(r'data-field="(\w+)" data-value="([^"]+)"', dom))
    assert {k: float(v) for k, v in bars.items()} == api["explanations"][0]["channel_totals"]
