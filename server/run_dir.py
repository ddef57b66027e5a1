"""The run directory contract of design.md: config, metrics, privacy, model, checkpoints."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from medfed.shared.config import RunConfig, to_toml


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class RunDirectory:
    """Writes RUN_DIR/{config.toml, metrics.jsonl, privacy.json, model.pt, checkpoints/}."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def create(cls, root: Path, config: RunConfig) -> RunDirectory:
        run_dir = cls(root)
        (run_dir.root / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir.root / "config.toml").write_text(to_toml(config), encoding="utf-8")
        metrics = run_dir.root / "metrics.jsonl"
        if metrics.exists():
            metrics.unlink()
        return run_dir

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def privacy_path(self) -> Path:
        return self.root / "privacy.json"

    def append_metrics(self, line: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_finite(line), sort_keys=False) + "\n")

    def write_privacy(self, per_hospital: dict[str, dict[str, Any]]) -> None:
        _atomic_write(self.privacy_path, json.dumps(_finite(per_hospital), indent=2) + "\n")

    def save_checkpoint(self, server_round: int, state: dict[str, torch.Tensor]) -> None:
        torch.save(state, self.root / "checkpoints" / f"round_{server_round}.pt")
        torch.save(state, self.root / "model.pt")

    def collect_ledgers(self, ledger_dir: Path) -> None:
        """Copy the hospitals' ledgers (and public keys) into RUN_DIR/ledgers for the audit."""
        target = self.root / "ledgers"
        if ledger_dir.resolve() == target.resolve() or not ledger_dir.exists():
            return
        (target / "keys").mkdir(parents=True, exist_ok=True)
        for ledger in ledger_dir.glob("*.jsonl"):
            shutil.copy2(ledger, target / ledger.name)
        for public_key in (ledger_dir / "keys").glob("*.pub"):
            shutil.copy2(public_key, target / "keys" / public_key.name)

    def read_metrics(self) -> list[dict[str, Any]]:
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def read_privacy(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.privacy_path.read_text(encoding="utf-8"))


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
