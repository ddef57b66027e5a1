"""The mask benchmark (simulations/benchmarks/secagg_masks.py) runs and prints its table."""

from __future__ import annotations

import pytest

from medfed.simulations.benchmarks import secagg_masks


def test_quick_benchmark_prints_a_row_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert secagg_masks.main(["--quick", "--repeats", "1"]) == 0
    table = capsys.readouterr().out
    assert "| 10,000 |" in table and "| 100,000 |" in table
    assert "medfed / flwr speed" in table
