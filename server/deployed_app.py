"""The coordinator's ServerApp as a SuperLink runs it (`medfed.server.deployed_app:app`).

`medfed-server` writes the run directory first and passes its path in the run config
(`run-dir`); the resolved RUN_DIR/config.toml is the one source of the run's settings.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    from pathlib import Path

    from medfed.server.deployment.start import run_federation

    config = context.run_config
    run_federation(
        grid,
        run_dir=Path(str(config["run-dir"])),
        input_shape=tuple(int(part) for part in str(config["input-shape"]).split(",")),
        num_classes=int(config["num-classes"]),
        expected_hospitals=int(config["expected-hospitals"]),
        poll_interval_s=float(config["poll-interval-s"]),
        resume=bool(config["resume"]),
    )
