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

from medfed.server.deployment.config import DeploymentConfig
from medfed.server.deployment.grid import PollingGrid
from medfed.server.federation import Federation, FederationState
from medfed.server.identities import HospitalIdentities
from medfed.server.run_dir import RunDirectory
from medfed.shared.config import load_config
from medfed.shared.errors import ConfigError
from medfed.shared.models import build_model
from medfed.shared.protocol import state_to_arrays

log = logging.getLogger("medfed.server")
RUN_STATE = "deployment.json"
REGISTERED = "registered_hospitals.json"  # name → node public key, for the ServerApp


def write_registered_hospitals(run_dir: Path, deployment: DeploymentConfig, insecure: bool) -> None:
    """RUN_DIR/registered_hospitals.json: the keys medfed-server registers with the SuperLink
    (empty without node authentication), so the ServerApp can name each authenticated node."""
    keys = {}
    if not insecure and deployment.node_authentication:
        keys = {h.name: h.public_key.read_text(encoding="utf-8") for h in deployment.hospitals}
    (run_dir / REGISTERED).write_text(json.dumps(keys, indent=2) + "\n", encoding="utf-8")


def hospital_identities(grid: Grid, run_dir: Path) -> HospitalIdentities:
    """Names by authenticated node key when medfed-server registered keys; otherwise trust on
    first use (no node authentication: a node keeps the first name it claims)."""
    path = run_dir / REGISTERED
    keys = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not keys:
        log.warning("no node authentication: hospitals keep the first name they claim")
        return HospitalIdentities.trust_on_first_use()
    return HospitalIdentities.registered_keys(grid, {n: k.encode() for n, k in keys.items()})


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
    identities = hospital_identities(fast_grid, run_dir)
    if not resume:
        torch.manual_seed(run.seed)
        initial = state_to_arrays(build_model(run.model, input_shape, num_classes).state_dict())
        federation = Federation(fast_grid, run, initial, directory, identities=identities)
        state_path.write_text(json.dumps({"run_id": federation.run_id}) + "\n", encoding="utf-8")
        federation.start(expected_hospitals)
        return
    done = last_checkpoint(run_dir)
    weights = torch.load(run_dir / "checkpoints" / f"round_{done}.pt", weights_only=True)
    run_id = json.loads(state_path.read_text(encoding="utf-8"))["run_id"]
    weights = state_to_arrays(weights)
    federation = Federation(
        fast_grid, run, weights, directory, run_id=run_id, identities=identities
    )
    if directory.privacy_path.is_file():
        federation.state = FederationState(privacy=directory.read_privacy())
    log.info("resuming run %s after round %d", federation.run_id, done)
    federation.start(expected_hospitals, first_round=done + 1)
