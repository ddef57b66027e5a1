"""`medfed-server --config federation.toml [--resume RUN_DIR]`: coordinate a deployed federation.

Starts a SuperLink on 127.0.0.1 (TLS + SuperNode authentication unless `--insecure`) and nginx
at `deployment.address` passing only its Fleet API, registers the hospitals' keys, submits the
medfed run over loopback, prints one line per round and writes the run directory. User errors:
one line each, exit 2.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer

from medfed.server.deployment.config import (
    check_deployment,
    check_model,
    load_federation_config,
)
from medfed.server.deployment.proxy import nginx_binary, start_proxy
from medfed.server.deployment.superlink import (
    CLIENTAPP,
    LOOPBACK,
    DeploymentError,
    loopback_tls,
    register_hospitals,
    start_process,
    submit_run,
    superlink_command,
    wait_for_port,
    write_connection,
)
from medfed.shared.cli import run_cli
from medfed.shared.config import load_config
from medfed.shared.errors import ConfigError, MedfedError
from medfed.shared.processes import free_port, stop_process

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _progress_line(line: dict, rounds: int) -> str:
    accuracy = line.get("global", {}).get("accuracy")
    score = f"accuracy {accuracy:.3f}" if isinstance(accuracy, float) else "no evaluation"
    where = "final" if line.get("phase") == "final" else f"round {line['round']}/{rounds}"
    text = (
        f"{where}: {len(line.get('hospitals', {}))} hospital(s), {score}, {line['seconds']:.1f} s"
    )
    for name, reason in line.get("skipped", {}).items():
        text += f"\n  skipped {name}: {reason}"
    if line.get("stopped"):
        text += f"\n  stopped: {line['stopped']}"
    return text


def _follow(run_dir: Path, rounds: int, processes: list[subprocess.Popen]) -> bool:
    """Print new metrics lines until the final evaluation; False if a process died first."""
    metrics = run_dir / "metrics.jsonl"
    shown = len(metrics.read_text(encoding="utf-8").splitlines()) if metrics.exists() else 0
    while True:
        lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.exists() else []
        for text in lines[shown:]:
            line = json.loads(text)
            typer.echo(_progress_line(line, rounds))
            if line.get("phase") == "final":
                return True
        shown = len(lines)
        if any(process.poll() is not None for process in processes):
            return False
        time.sleep(0.2)


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM stops like Ctrl-C, so the Flower processes are stopped too."""
    raise KeyboardInterrupt


@app.command()
def start(
    config: Annotated[Path, typer.Option("--config", help="the coordinator's federation.toml")],
    out: Annotated[Path, typer.Option("--out", help="run directory to write")] = Path(
        "runs/deployment"
    ),
    resume: Annotated[
        Path | None, typer.Option("--resume", help="continue this run directory's run")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="plaintext, no node authentication (testing only)")
    ] = False,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a run key: --set rounds=3")
    ] = None,
    clientapp: Annotated[
        str, typer.Option("--clientapp", hidden=True, help="benchmarks: another ClientApp")
    ] = CLIENTAPP,
) -> None:
    """Run the federation of federation.toml with the hospitals that connect."""
    from medfed.server.deployment.start import write_registered_hospitals
    from medfed.server.run_dir import RunDirectory

    federation = load_federation_config(config, overrides or [])
    deployment = federation.deployment
    found = check_deployment(deployment, insecure, config) + check_model(federation, config)
    if found:
        for line in found:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2)
    nginx = nginx_binary()
    if insecure:
        typer.echo("WARNING: --insecure: plaintext, hospitals are not authenticated", err=True)
    if resume is not None:
        from medfed.server.deployment.start import last_checkpoint

        if not (resume / "config.toml").is_file():
            raise ConfigError(f"--resume {resume}: no config.toml (not a run directory)")
        typer.echo(f"resuming {resume} after round {last_checkpoint(resume)}")
        run_dir = resume.resolve()
        rounds = load_config(resume / "config.toml", environ={}).rounds
    else:
        run_dir = RunDirectory.create(out, federation.run).root.resolve()
        rounds = federation.run.rounds
    flwr_home, port = run_dir / "superlink", free_port()
    while port == deployment.port:  # nginx takes that one (on 127.0.0.1 too, in tests)
        port = free_port()
    tls = None if insecure else loopback_tls(flwr_home)
    write_connection(flwr_home, port, tls)
    link = proxy = runner = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        command = superlink_command(deployment, flwr_home, port, tls)
        link = start_process(command, flwr_home, run_dir / "superlink.log")
        wait_for_port(LOOPBACK, port, link, deployment.startup_timeout_s)
        proxy = start_proxy(nginx, deployment, port, run_dir, tls)
        if not insecure and deployment.node_authentication:
            register_hospitals(deployment, flwr_home)
        write_registered_hospitals(run_dir, deployment, insecure)
        typer.echo(
            f"Fleet API on {deployment.address} (nginx), SuperLink on {LOOPBACK}:{port}; "
            "waiting for hospitals"
        )
        run_config = {
            "run-dir": str(run_dir),
            "input-shape": ",".join(str(size) for size in deployment.input_shape),
            "num-classes": deployment.num_classes,
            "expected-hospitals": deployment.hospitals_to_wait_for,
            "poll-interval-s": deployment.poll_interval_s,
            "resume": resume is not None,
        }
        runner = submit_run(run_config, flwr_home, run_dir / "serverapp.log", clientapp)
        finished = _follow(run_dir, rounds, [runner, link, proxy])
    except KeyboardInterrupt:
        typer.echo("stopped; resume with --resume " + str(run_dir), err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_process(runner)
        stop_process(proxy)
        stop_process(link)
    if not finished:
        raise DeploymentError(
            f"the run ended before its final evaluation; see {run_dir / 'serverapp.log'}, "
            f"{run_dir / 'superlink.log'} and {run_dir / 'proxy.log'} "
            f"(continue with --resume {run_dir})"
        )
    _report(run_dir)
    typer.echo(f"run directory: {run_dir}")


def _report(run_dir: Path) -> None:
    from medfed.server.report import build_report

    try:
        build_report(run_dir)
    except MedfedError as error:  # the report is a convenience; the run files are complete
        typer.echo(f"warning: report not built: {error}", err=True)


def main() -> None:
    """Console entry point: bad input exits 2 with one line; a failed deployment exits 1."""
    run_cli(app, runtime_errors=(DeploymentError,))
