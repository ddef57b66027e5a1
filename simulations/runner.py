"""Run a whole federation with Flower's simulation engine: on this machine or a Ray cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from flwr.clientapp import ClientApp

from medfed.client.client_app import build_client_app
from medfed.server.federation import RoundListener
from medfed.server.identities import HospitalIdentities
from medfed.server.report import build_report
from medfed.server.run_dir import RunDirectory
from medfed.server.server_app import build_server_app
from medfed.shared.config.models import RunConfig
from medfed.shared.data import HospitalData, load_federation
from medfed.shared.errors import ConfigError, SecureAggregationError
from medfed.shared.models import build_model
from medfed.simulations.cluster import attached, backend_config
from medfed.simulations.hospitals import (
    NodeRoster,
    RosteredClientApp,
    SimulatedHospitals,
    prepare_identities,
    store_partitions,
)


def check_federation(run: RunConfig) -> list[HospitalData]:
    """Load every hospital's data and build the model once, so bad input fails before any
    process starts.

    Raises:
        ConfigError, DataError: bad configuration or data.
    """
    hospitals = load_federation(run.data, run.seed)
    if len(hospitals) < run.strategy.min_hospitals:
        raise ConfigError(
            f"strategy.min_hospitals = {run.strategy.min_hospitals} but the data gives "
            f"{len(hospitals)} hospital(s) (lower min_hospitals or add hospitals)"
        )
    build_model(run.model, hospitals[0].input_shape, hospitals[0].num_classes)
    if run.secure_aggregation.enabled:
        try:
            run.secure_aggregation.check_for(len(hospitals))
        except SecureAggregationError as error:
            raise ConfigError(
                f"secure_aggregation: {error} (or set secure_aggregation.enabled = false)"
            ) from None
    return hospitals


def simulate(
    run: RunConfig,
    out: Path,
    on_round: RoundListener | None = None,
    hospitals: list[HospitalData] | None = None,
    client_app: ClientApp | None = None,
) -> RunDirectory:
    """Run every round of `run` on Flower's simulation engine; returns the run directory.

    `client_app` replaces medfed's hospital app (the overhead benchmark passes a no-op one).
    Each hospital's partition is written to OUT/hospitals/data for the run's duration, so a
    message loads one small file instead of the whole federation's data.
    """
    hospitals = hospitals if hospitals is not None else check_federation(run)
    with attached(run.simulation) as cluster:  # a wrong address fails before anything is written
        input_shape, num_classes = hospitals[0].input_shape, hospitals[0].num_classes
        num_hospitals = len(hospitals)
        run_dir = RunDirectory.create(out, run)
        data_dir = (out / "hospitals" / "data").resolve()
        # Replies are filed under the partition's hospital, never the name a reply claims.
        roster = NodeRoster(data_dir / "nodes", [hospital.name for hospital in hospitals])
        server_app = build_server_app(
            run,
            run_dir,
            input_shape,
            num_classes,
            num_hospitals,
            on_round,
            identities=HospitalIdentities(roster),
        )
        # The simulated hospitals' own storage (ledgers + private keys); the run directory gets
        # copies of the ledgers and public keys only, as a coordinator would be handed them.
        ledger_dir = (run.privacy.ledger_dir or out / "hospitals").resolve()
        try:
            if client_app is None:
                if run.secure_aggregation.enabled:
                    prepare_identities([hospital.name for hospital in hospitals], ledger_dir)
                store_partitions(hospitals, data_dir)
                client_app = build_client_app(SimulatedHospitals(run, ledger_dir, data_dir))
            client_app = RosteredClientApp(client_app, roster)
            del hospitals  # the workers read their own partitions; the driver need not hold them
            if cluster is not None:
                cluster.check_shared_storage([data_dir, ledger_dir])
            # Opt in to Ray's future behaviour for CPU-only workers (it warns on every start).
            os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
            from flwr.simulation import run_simulation  # heavy (Ray): only when a run starts

            run_simulation(
                server_app,
                client_app,
                num_supernodes=num_hospitals,
                backend_config=backend_config(run.simulation),
            )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)  # regenerable; no stray copy of the data
            with contextlib.suppress(OSError):
                data_dir.parent.rmdir()  # only when empty (ledgers kept elsewhere)
    run_dir.collect_ledgers(ledger_dir)
    build_report(run_dir.root)
    return run_dir
