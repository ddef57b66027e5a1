"""Start or resume the federation inside the deployed ServerApp.

A fresh run starts from the seeded model; a resumed run continues after the last
checkpointed round with the same run id, so each hospital's ledger keeps counting the
resumed rounds against the run's original ε target (no second target for the same run).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from flwr.serverapp import Grid

from medfed.server.deployment.grid import PollingGrid
from medfed.server.federation import Federation, FederationState
from medfed.server.run_dir import RunDirectory
from medfed.shared.config import load_config
from medfed.shared.errors import ConfigError
from medfed.shared.models import build_model
from medfed.shared.protocol import state_to_arrays

log = logging.getLogger("medfed.server")
RUN_STATE = "deployment.json"


def last_checkpoint(run_dir: Path) -> int:
    """The highest N of RUN_DIR/checkpoints/round_N.pt.

    Raises:
        ConfigError: no checkpoint to resume from.
    """
    rounds = [
        int(match.group(1))
        for path in (run_dir / "checkpoints").glob("round_*.pt")
        if (match := re.fullmatch(r"round_(\d+)\.pt", path.name))
    ]
    if not rounds:
        raise ConfigError(f"{run_dir}: no checkpoints/round_N.pt to resume from")
    return max(rounds)


def run_federation(
    grid: Grid,
    run_dir: Path,
    input_shape: tuple[int, ...],
    num_classes: int,
    expected_hospitals: int,
    poll_interval_s: float,
    resume: bool,
) -> None:
    """Run (or resume) the federation configured in RUN_DIR/config.toml on `grid`."""
    import torch

    run = load_config(run_dir / "config.toml", environ={})
    directory = RunDirectory(run_dir)
    fast_grid = PollingGrid(grid, poll_interval_s)
    state_path = run_dir / RUN_STATE
    if not resume:
        torch.manual_seed(run.seed)
        initial = state_to_arrays(build_model(run.model, input_shape, num_classes).state_dict())
        federation = Federation(fast_grid, run, initial, directory)
        state_path.write_text(json.dumps({"run_id": federation.run_id}) + "\n", encoding="utf-8")
        federation.start(expected_hospitals)
        return
    done = last_checkpoint(run_dir)
    weights = torch.load(run_dir / "checkpoints" / f"round_{done}.pt", weights_only=True)
    run_id = json.loads(state_path.read_text(encoding="utf-8"))["run_id"]
    federation = Federation(fast_grid, run, state_to_arrays(weights), directory, run_id=run_id)
    if directory.privacy_path.is_file():
        federation.state = FederationState(privacy=directory.read_privacy())
    log.info("resuming run %s after round %d", federation.run_id, done)
    federation.start(expected_hospitals, first_round=done + 1)
