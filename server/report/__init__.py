"""The privacy officer's audit report of a run directory: report.json and report.html."""

from __future__ import annotations

from pathlib import Path

from medfed.server.report.assemble import assemble
from medfed.server.report.page import render_page
from medfed.server.report.run_files import read_run_files
from medfed.server.report.schema import AuditReport

__all__ = ["AuditReport", "build_report"]


def build_report(run_dir: Path) -> AuditReport:
    """Audit `run_dir` and write RUN_DIR/report.json and RUN_DIR/report.html.

    Ledgers are verified and their ε recomputed from the entries alone; what does not check
    out is listed in the report's `issues`, not raised.

    Raises:
        DataError: config.toml, metrics.jsonl or privacy.json is missing or malformed.
    """
    run_dir = Path(run_dir)
    files = read_run_files(run_dir)
    report = assemble(run_dir, files)
    (run_dir / "report.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.html").write_text(render_page(report, files.config_text), encoding="utf-8")
    return report
