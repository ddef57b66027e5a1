"""The coordinator's Flower ServerApp, built around one run configuration."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from medfed.server.federation import Federation, RoundListener
from medfed.server.identities import HospitalIdentities
from medfed.server.run_dir import RunDirectory
from medfed.shared.config.models import RunConfig
from medfed.shared.models import build_model
from medfed.shared.protocol import state_to_arrays


def build_server_app(
    run: RunConfig,
    run_dir: RunDirectory,
    input_shape: tuple[int, ...],
    num_classes: int,
    expected_hospitals: int,
    on_round: RoundListener | None = None,
    identities: HospitalIdentities | None = None,
) -> ServerApp:
    """A ServerApp that runs the federation of `run` and writes `run_dir`; `identities` names
    each node's replies (see medfed.server.identities)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        import torch

        torch.manual_seed(run.seed)
        initial = state_to_arrays(build_model(run.model, input_shape, num_classes).state_dict())
        Federation(grid, run, initial, run_dir, on_round, identities=identities).start(
            expected_hospitals
        )

    return app
