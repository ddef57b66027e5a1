"""model-card.html: the card as one self-contained page (inline CSS, no script, no network)."""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#57606a;font-size:.9rem}
.statement{background:#eef6ee;border-left:4px solid #2da44e;padding:.5rem 1rem}
code{font-size:.85rem;word-break:break-all}
"""
METRICS = ("accuracy", "auroc", "sensitivity", "specificity")


def _text(value: Any) -> str:
    return escape("" if value is None else str(value))


def _number(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i >= numeric_from else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metric_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "—"
    interval = entry.get("ci95")
    span = f" [{_number(interval[0])}, {_number(interval[1])}]" if interval else ""
    return f"{_number(entry['value'])}{span}"


def _metrics(section: dict[str, Any] | None, title: str) -> str:
    if not section:
        return ""
    rows = [
        [_text(name)] + [_metric_cell(scores.get(key)) for key in METRICS]
        + [_number(scores.get("num_examples"), 1)]
        for name, scores in [*section["hospitals"].items(), ("all hospitals", section["global"])]
    ]  # fmt: skip
    table = _table(["hospital", *METRICS, "n"], rows)
    return f"<h3>{escape(title)}: {_text(section['source'])}</h3>{table}" + (
        f'<p class="note">{_text(section["note"])}; 95 % intervals in brackets.</p>'
    )


def _privacy(privacy: dict[str, Any]) -> str:
    rows = []
    for h in privacy["hospitals"]:
        counts = h.get("released_label_counts") or {}
        by_class = ", ".join(f"{k}: {v}" for k, v in (counts.get("by_class") or {}).items())
        rows.append([
            _text(h["name"]), _number(h.get("epsilon"), 4), _text(h.get("delta")),
            _number(h.get("evaluation_epsilon"), 4), _text(h.get("status")),
            escape(by_class or "not released") + (f" (Σ {counts['total']})" if counts else ""),
        ])  # fmt: skip
    first = privacy["hospitals"][0] if privacy["hospitals"] else {}
    return (
        f"<p>{_text(privacy['unit'])}. Privacy {'on' if privacy['enabled'] else 'OFF'}.</p>"
        + _table(
            [
                "hospital",
                "ε (train)",
                "δ",
                "ε (test)",
                "status",
                "training data: DP label counts as released",
            ],
            rows,
        )  # fmt: skip
        + f'<p class="note">ε (train) covers {_text(first.get("covers"))}; ε (test) covers '
        f"{_text(first.get('evaluation_covers'))}. {_text(privacy['training_counts_note'])}.</p>"
    )


def _inputs(schema: dict[str, Any]) -> str:
    if schema["kind"] == "tabular":
        rows = [
            [_text(f["name"]), _text(f["description"]), _text(f["unit"]),
             _text(", ".join(f["choices"]) if f["choices"] else f"{f['low']} … {f['high']}"
                   if f["low"] is not None else "true / false")]
            for f in schema["fields"]
        ]  # fmt: skip
        return _table(["field", "meaning", "unit", "accepted values"], rows, 9)
    if schema["kind"] == "image":
        return (
            f"<p>{schema['image_size']}×{schema['image_size']} pixels, {schema['channels']} "
            f"channel(s), PNG or DICOM; window: {_text(schema['window'])}.</p>"
        )
    units = schema.get("channel_units", {})
    rows = [
        [_text(name), _text(units.get(name)), f"{low:g} … {high:g}"]
        for name, (low, high) in schema["channel_ranges"].items()
    ]
    return (
        f"<p>Per patient: measurement times ({_text(schema['time_unit'])}) and per channel one "
        "value per time (null where not measured). Grid: "
        f"{schema['sequence_length']} steps of {schema['sequence_step']:g}. "
        f"{_text(schema['grid'])}</p>"
        + _table(["channel", "unit", "accepted range (outside: refused, 422)"], rows, 9)
    )


def render_card(card: dict[str, Any]) -> str:
    """The HTML page of `card` (every value escaped)."""
    metrics = card["metrics"]
    versions = ", ".join(f"{k} {v}" for k, v in card["versions"].items() if v)
    export = card.get("export")
    export_line = (
        f"<p>Exported as {_text(export['format'])}: <code>{_text(export['file'])}</code> "
        f"(SHA-256 <code>{_text(export['sha256'])}</code>); {_text(export['check'])}.</p>"
        if export
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model card: {_text(card["name"])}</title>
<style>{CSS}</style></head><body>
<h1>Model card: {_text(card["name"])}</h1>
<p>{_text(card["task"]["description"])}. Classes: {_text(", ".join(card["task"]["classes"]))}.
Generated {_text(card["date"])} by medfed {_text(card["medfed_version"])}.</p>
<p class="statement">{_text(card["privacy"]["post_processing"])}</p>
<h2>Intended use</h2><p>{_text(card["intended_use"])}</p>
<h2>Limitations</h2><ul>{"".join(f"<li>{_text(x)}</li>" for x in card["limitations"])}</ul>
<h2>Privacy and training data</h2>{_privacy(card["privacy"])}
<h2>Performance</h2>{_metrics(metrics.get("exact"), "Test metrics")}
{_metrics(metrics.get("released"), "Released metrics")}
<h2>Input</h2>{_inputs(card["input_schema"])}
<h2>Explanations</h2><p>{_text(card["explanations"]["methods"])}; baseline:
{_text(card["explanations"]["baseline"])}.</p>
<h2>Model and provenance</h2>
<p>{_text(card["model"]["name"])}, {card["model"]["parameters"]} parameters; trained
{card["training"]["rounds"]} round(s) of {_text(card["training"]["strategy"])}.
Weights SHA-256 <code>{_text(card["model"]["model_sha256"])}</code>; configuration
SHA-256 <code>{_text(card["config_sha256"])}</code>.</p>{export_line}
<p class="note">Versions: {_text(versions)}.</p>
</body></html>
"""
