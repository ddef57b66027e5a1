"""`medfed`: simulate a federation, report, audit, certs, export and serve its model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medfed.shared.cli import run_cli
from medfed.shared.config import load_config
from medfed.shared.errors import ConfigError, LedgerError
from medfed.simulations.certs_cli import certs

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="medfed: federated, private learning for hospitals",
)
console = Console()


@app.callback()
def _group() -> None:
    """medfed: federated, private learning for hospitals."""


def _log_to_file(run_dir: Path) -> None:
    """Flower's and medfed's logs go to RUN_DIR/run.log; the console shows progress only."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("flwr", "medfed"):
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@app.command()
def simulate(
    config: Annotated[Path, typer.Argument(help="run configuration (TOML)")],
    out: Annotated[Path, typer.Option("--out", help="run directory to write")] = Path(
        "runs/latest"
    ),
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a key: --set rounds=3")
    ] = None,
) -> None:
    """Run a whole federation on this machine (or a Ray cluster) and write its run directory."""
    from medfed.simulations.cluster import attached
    from medfed.simulations.exact import write_exact_evaluation
    from medfed.simulations.runner import check_federation
    from medfed.simulations.runner import simulate as run_simulation

    run = load_config(config, overrides or [])
    hospitals = check_federation(run)
    _log_to_file(out)
    with (
        attached(run.simulation),  # a wrong simulation.ray_address: one line, before the bar
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task(f"{run.name}: starting", total=run.rounds, status="")

        def on_round(line: dict) -> None:
            accuracy = line["global"].get("accuracy")
            status = f"acc {accuracy:.3f} (DP release)" if accuracy is not None else ""
            if line["phase"] == "train":
                progress.update(
                    task,
                    completed=line["round"],
                    description=f"{run.name}: round {line['round']}",
                    status=status,
                )
            else:
                progress.update(task, description=f"{run.name}: final", status=status)

        run_dir = run_simulation(run, out, on_round, hospitals)
    exact = write_exact_evaluation(run_dir, run, hospitals)
    from medfed.simulations.summary import summary_table  # torch: only when a run ends

    console.print(summary_table(run_dir, run, exact))
    console.print(f"run directory: {out}   audit report: {out / 'report.html'}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """(Re)build RUN_DIR/report.html and report.json from the run's files and ledgers."""
    from medfed.server.report import build_report

    audit = build_report(run_dir)
    for finding in audit.issues:
        console.print(f"[yellow]finding:[/yellow] {finding}", highlight=False, soft_wrap=True)
    console.print(f"wrote {run_dir / 'report.html'} and {run_dir / 'report.json'}")


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    format: Annotated[
        str, typer.Option("--format", help="torchscript or onnx (checked with onnxruntime)")
    ] = "torchscript",
    out: Annotated[Path | None, typer.Option("--out", help="default: RUN_DIR/export")] = None,
) -> None:
    """Export the final model (TorchScript or ONNX) with model-card.json and model-card.html."""
    from medfed.serve.export import FILES, export_model

    if format not in FILES:
        raise ConfigError(f"--format {format}: use torchscript or onnx")
    exported = export_model(run_dir, format, out)  # type: ignore[arg-type]
    console.print(
        f"wrote {exported.model_file} (matches PyTorch within {exported.max_abs_diff:.2g}), "
        f"model-card.json and model-card.html in {exported.directory}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("serve")
def serve_command(
    directory: Annotated[Path, typer.Argument(help="a run directory or an export folder")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    api_key_file: Annotated[
        Path | None, typer.Option(help="require this key in the X-API-Key header for /v1/")
    ] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
    threshold: Annotated[float, typer.Option(help="decision threshold on P(positive)")] = 0.5,
    max_body_bytes: Annotated[int, typer.Option(help="larger request bodies get 413")] = 4194304,
    torch_threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 1,
) -> None:
    """Serve predictions and explanations over HTTP (FastAPI on uvicorn), page at /."""
    from medfed.serve.server import ServeOptions, serve

    options = ServeOptions(
        directory,
        host,
        port,
        api_key_file,
        ssl_certfile,
        ssl_keyfile,
        threshold,
        max_body_bytes,
        torch_threads,
    )
    serve(options)


audit = typer.Typer(add_completion=False, help="Verify privacy ledgers and recompute ε from them.")
app.add_typer(audit, name="audit")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise LedgerError(f"{path}: {what} not found (pass the path of a hospital's ledger .jsonl)")
    return path


def _test_stream_note(ledger: Path) -> str:
    """`` (test stream ε = …)`` when the ledger holds evaluation releases, else ''."""
    from medfed.shared.privacy.chain import read_entries
    from medfed.shared.privacy.verify import ledger_epsilon

    if not any(entry.get("type") == "evaluation" for entry in read_entries(ledger)):
        return ""
    return f" (train stream; test stream ε = {ledger_epsilon(ledger, stream='test'):.6f})"


@audit.command("verify")
def audit_verify(
    ledger: Annotated[Path, typer.Argument(help="a hospital's ledger (.jsonl)")],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="the hospital's trusted .pub key file")
    ] = None,
) -> None:
    """Check the hash chain, signatures and every epsilon_after; exit 1 at the first bad line."""
    from medfed.shared.privacy.verify import ledger_epsilon, trusted_key_for, verify_ledger

    _existing(ledger, "ledger")
    trusted = (
        _existing(public_key, "public key").read_text() if public_key else trusted_key_for(ledger)
    )
    verdict = verify_ledger(ledger, trusted)
    if not verdict.valid:
        console.print(
            f"[red]INVALID[/red] {ledger}: line {verdict.bad_line}: {verdict.reason}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    key_note = (
        "trusted key"
        if trusted
        else "its own header key only (no trusted key found: pass --public-key)"
    )
    console.print(
        f"[green]valid[/green] {ledger}: {verdict.entries} entries, hospital '{verdict.hospital}', "
        f"ε = {ledger_epsilon(ledger):.6f}{_test_stream_note(ledger)}; signatures checked "
        f"against {key_note}",
        highlight=False,
        soft_wrap=True,
    )


@audit.command("epsilon")
def audit_epsilon(
    ledger: Annotated[Path, typer.Argument(help="a hospital's ledger (.jsonl)")],
    accountant: Annotated[
        str | None, typer.Option(help="rdp or prv (default: the ledger's)")
    ] = None,
    delta: Annotated[float | None, typer.Option(help="δ (default: the ledger's)")] = None,
    stream: Annotated[
        str | None,
        typer.Option(help="train or test: print only that stream's ε, as a bare number"),
    ] = None,
) -> None:
    """Print ε recomputed from the ledger entries alone: the train stream's (training rounds and
    the label-count release) and, when the ledger has evaluation releases, the test stream's."""
    from medfed.shared.privacy.chain import STREAMS, read_entries
    from medfed.shared.privacy.verify import ledger_epsilon

    path = _existing(ledger, "ledger")
    if stream is not None and stream not in set(STREAMS.values()):
        raise LedgerError(f"--stream: unknown stream '{stream}' (use train or test)")
    if stream is not None:
        console.print(f"{ledger_epsilon(path, delta, accountant, stream):.6f}")
        return
    train = ledger_epsilon(path, delta, accountant, "train")
    if not any(entry.get("type") == "evaluation" for entry in read_entries(path)):
        console.print(f"{train:.6f}")  # one number, as scripts read it
        return
    test = ledger_epsilon(path, delta, accountant, "test")
    console.print(f"train stream ε = {train:.6f} (training split: rounds, label counts)")
    console.print(f"test stream ε = {test:.6f} (test split: evaluation releases)")


app.add_typer(certs, name="certs")


def main() -> None:
    """Console entry point: user errors exit 2 with one line, anything else exits 1."""
    run_cli(app, lambda text: console.print(text, highlight=False, soft_wrap=True, markup=False))
