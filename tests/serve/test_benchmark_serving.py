"""The serving benchmark runs (--quick) and prints one row per model, endpoint and load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains runs and starts four uvicorn processes
ROOT = Path(__file__).resolve().parents[2]


def test_serving_quick_prints_medfed_and_floor_for_every_case(heart_run, image_run):
    command = [sys.executable, "-m", "medfed.simulations.benchmarks.serving", "--quick",
               "--heart", str(heart_run), "--image", str(image_run)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = [line.strip("|").split("|") for line in result.stdout.splitlines()
            if line.startswith("| heart") or line.startswith("| image")]  # fmt: skip
    cases = {tuple(cell.strip() for cell in row[:4]) for row in rows}
    assert cases == {
        ("heart", "predict", "1", "1"), ("heart", "predict", "32", "1"),
        ("heart", "predict", "32", "32"), ("heart", "explain", "1", "1"),
        ("heart", "explain", "32", "1"), ("image", "predict", "1", "1"),
        ("image", "predict", "32", "1"), ("image", "explain", "1", "1"),
        ("image", "explain", "32", "1"),
    }  # fmt: skip
    for row in rows:
        numbers = [float(cell) for cell in row[4:]]
        assert all(value > 0 for value in numbers)
        p50, p99 = numbers[0], numbers[1]
        assert p50 <= p99
