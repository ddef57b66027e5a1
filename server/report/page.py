"""The report as one self-contained HTML page: inline CSS and SVG, no scripts, no fetches."""

from __future__ import annotations

from html import escape

from medfed.server.report.plots import epsilon_plot, metrics_plot
from medfed.server.report.schema import AuditReport
from medfed.server.report.tables import (
    coordinator_sees_table,
    epsilon_table,
    final_table,
    privacy_table,
    rounds_table,
)

CSS = """
:root { --ink:#1d2430; --muted:#5b6576; --line:#d9dee7; --ok:#1a7f37; --bad:#b42318;
        --warn:#9a6700; --panel:#f6f8fb; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff; line-height:1.5;
       font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width:1240px; margin:0 auto; padding:28px 32px 48px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:19px; margin:36px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
.meta { color:var(--muted); margin:0 0 16px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0;
           background:var(--panel); padding:12px 16px; border-radius:6px; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; }
code, pre { font:13px ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background:var(--panel); padding:12px 16px; border-radius:6px; overflow:auto; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-size:13.5px; margin:8px 0 4px; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:right;
         vertical-align:top; font-variant-numeric:tabular-nums; }
thead th { background:var(--panel); font-weight:600; vertical-align:bottom; }
thead th.text { text-align:left; }
td { white-space:nowrap; }
table.privacy { font-size:13px; }
table.privacy th, table.privacy td { padding:6px 6px; }
table.privacy td.ledger-status, table.privacy th:nth-child(13) { padding-left:14px; }
table.privacy thead th { max-width:80px; }
tbody th, td.status, td.ledger-status, td.accountant, td.phase, td.skipped { text-align:left; }
tbody th { white-space:nowrap; }
tr.overall th, tr.overall td { font-weight:600; border-top:2px solid var(--line); }
td.status, td.ledger-status { white-space:normal; }
td.status { min-width:90px; max-width:220px; }
td.ledger-status { min-width:120px; max-width:200px; }
.badge { display:inline-block; padding:0 8px; border-radius:10px; font-size:12px; font-weight:600; }
.badge.ok { background:#dafbe1; color:var(--ok); }
.badge.bad { background:#ffebe9; color:var(--bad); }
.badge.warn { background:#fff8c5; color:var(--warn); }
.reason, .note { display:block; color:var(--muted); font-size:12px; }
td.invalid .reason, td.invalid .bad-line { color:var(--bad); }
td.over, td.mismatch { color:var(--bad); font-weight:700; }
ul.issues li { margin:4px 0; }
.all-clear { color:var(--ok); }
section.guarantee p { max-width:80ch; }
svg.plot { display:block; width:100%; height:auto; max-width:1100px; margin:8px 0; }
#epsilon svg.plot { max-width:900px; }
footer { margin-top:40px; color:var(--muted); font-size:13px; }
"""


def _status(report: AuditReport) -> str:
    if report.status == "stopped":
        return f"<b>stopped early</b>: {escape(report.stopped or '')}"
    return (
        "completed" if report.status == "completed" else "<b>incomplete</b> (no final evaluation)"
    )


def _facts(report: AuditReport) -> str:
    ledgers = [h.ledger for h in report.hospitals if h.ledger is not None]
    valid = sum(ledger.valid for ledger in ledgers)
    planned = report.rounds_planned if report.rounds_planned is not None else "?"
    rows = [
        ("configuration SHA-256", f'<code class="config-sha256">{report.config_sha256}</code>'),
        ("differential privacy", "on" if report.privacy_enabled else "<b>off</b>"),
        ("status", _status(report)),
        ("rounds", f"{report.rounds_completed} of {planned}"),
        ("ledgers", f"{valid} of {len(report.hospitals)} hospitals' ledgers verify"),
    ]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<dl class="facts">{items}</dl>'


def _issues(report: AuditReport) -> str:
    if not report.issues:
        return (
            '<p class="all-clear">No findings: every ledger verifies and matches privacy.json.</p>'
        )
    items = "\n".join(f"<li>{escape(issue)}</li>" for issue in report.issues)
    return f'<ul class="issues">\n{items}\n</ul>'


def _plot(svg: str | None, absent: str) -> str:
    return svg if svg is not None else f'<p class="note">{absent}</p>'


def render_page(report: AuditReport, config_text: str) -> str:
    """The whole report page; `config_text` is config.toml as written."""
    title = f"Privacy audit: {escape(report.run_name)}"
    guarantee = "\n".join(f"<p>{escape(p)}</p>" for p in report.guarantee)
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    meta = f"{escape(report.run_dir)} · generated {generated} · schema v{report.schema_version}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>{title}</h1>
<p class="meta">{meta}</p>
{_facts(report)}
</header>
<section class="guarantee" id="guarantee">
<h2>What the guarantee means</h2>
{guarantee}
</section>
<section id="findings">
<h2>Findings</h2>
{_issues(report)}
</section>
<section id="privacy">
<h2>Differential privacy per hospital</h2>
{privacy_table(report)}
</section>
<section id="coordinator-sees">
<h2>What the coordinator sees</h2>
<p>Every value a hospital's replies carry. <em>dp</em>: the output of a mechanism the hospital
accounted in its signed ledger (or post-processing of one); <em>declared</em>: not a DP output,
listed here with why it is acceptable.</p>
{coordinator_sees_table(report)}
</section>
<section id="epsilon">
<h2>Privacy spent per round</h2>
{_plot(epsilon_plot(report), "No ε was recorded (differential privacy off).")}
{epsilon_table(report)}
</section>
<section id="metrics">
<h2>Accuracy and AUROC per round</h2>
{_plot(metrics_plot(report), "No evaluation was recorded.")}
{rounds_table(report)}
</section>
<section id="final">
<h2>Final model per hospital</h2>
{final_table(report)}
</section>
<section id="configuration">
<h2>Configuration</h2>
<p>SHA-256 of config.toml: <code class="config-sha256">{report.config_sha256}</code></p>
<details><summary>config.toml</summary><pre>{escape(config_text)}</pre></details>
</section>
<footer>Built by <code>medfed report</code>. Every number on this page is also in report.json.
</footer>
</main>
</body>
</html>
"""
