"""The report's HTML tables. Rows carry `data-hospital`, cells a class naming their value,
and ε-like numbers are printed with 6 decimals, so the page can be checked by a program.
"""

from __future__ import annotations

from html import escape

from medfed.server.report.schema import AuditReport, HospitalAudit, LedgerAudit, Metrics

METRIC_COLUMNS = (
    ("accuracy", "accuracy"),
    ("auroc", "AUROC"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("loss", "loss"),
    ("num_examples", "test examples"),
)


def number(value: float | int | None, spec: str = ".6f") -> str:
    return "—" if value is None else format(value, spec)


def cell(css_class: str, text: str, **data: object) -> str:
    attributes = "".join(f' data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in data.items())
    return f'<td class="{css_class}"{attributes}>{text}</td>'


def _table(
    css_class: str, headers: list[str], rows: list[str], text: tuple[int, ...] = (0,)
) -> str:
    """A table whose columns numbered in `text` are left-aligned text, the rest numbers."""
    classes = ['class="text"' if i in text else 'class="number"' for i in range(len(headers))]
    head = "".join(f"<th {c}>{escape(h)}</th>" for c, h in zip(classes, headers, strict=True))
    body = "\n".join(rows)
    return (
        f'<div class="scroll"><table class="{css_class}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def _row(name: str, cells: list[str]) -> str:
    label = escape(name)
    return f'<tr data-hospital="{label}"><th scope="row">{label}</th>{"".join(cells)}</tr>'


def _ledger_cell(ledger: LedgerAudit | None) -> str:
    if ledger is None:
        return cell(
            "ledger-status missing", '<span class="badge bad">no ledger</span>', valid="false"
        )
    if not ledger.valid:
        where = f"line {ledger.bad_line}: " if ledger.bad_line is not None else ""
        text = (
            f'<span class="badge bad">invalid</span> <span class="bad-line">{where}</span>'
            f'<span class="reason">{escape(ledger.reason)}</span>'
        )
        return cell("ledger-status invalid", text, valid="false", bad_line=ledger.bad_line or "")
    pinned = "pinned key" if ledger.key_pinned else "header key only"
    text = (
        f'<span class="badge ok">verifies</span> <span class="note">{ledger.entries} entries, '
        f"{ledger.runs} run(s), {pinned}</span>"
    )
    return cell("ledger-status valid", text, valid="true")


def _key_cell(ledger: LedgerAudit | None) -> str:
    if ledger is None or not ledger.public_key_sha256:
        return cell("key-fingerprint", "—")
    digest = ledger.public_key_sha256
    short = f"{digest[:4]} {digest[4:8]}"
    return cell("key-fingerprint", f'<code title="SHA-256 {digest}">{short}…</code>', sha256=digest)


def _status_cell(hospital: HospitalAudit) -> str:
    status = hospital.status or "unknown"
    tone = "ok" if status == "active" else "bad" if status in {"exhausted", "refused"} else "warn"
    reason = f'<div class="reason">{escape(hospital.reason)}</div>' if hospital.reason else ""
    return cell("status", f'<span class="badge {tone}">{escape(status)}</span>{reason}')


def privacy_table(report: AuditReport) -> str:
    """DP parameters, ε spent against the budget, and the ledger's verdict per hospital."""
    rows = []
    for h in report.hospitals:
        ledger = h.ledger
        over = " over" if h.within_budget is False else ""
        mismatch = " mismatch" if h.epsilon_matches_ledger is False else ""
        rows.append(
            _row(
                h.name,
                [
                    _status_cell(h),
                    cell(f"epsilon{over}", number(h.epsilon)),
                    cell(f"ledger-epsilon{mismatch}", number(ledger.epsilon if ledger else None)),
                    cell("budget", number(h.max_epsilon)),
                    cell("target-epsilon", number(h.target_epsilon)),
                    cell("delta", number(h.delta, "g")),
                    cell("noise-multiplier", number(h.noise_multiplier, ".6g")),
                    cell("max-grad-norm", number(h.max_grad_norm, "g")),
                    cell("sample-rate", number(h.sample_rate, ".6g")),
                    cell("steps", number(h.steps, "d")),
                    cell("accountant", escape(h.accountant or "—")),
                    cell("evaluation-epsilon", number(h.evaluation_epsilon)),
                    cell("evaluation-budget", number(h.max_evaluation_epsilon)),
                    _ledger_cell(ledger),
                    _key_cell(ledger),
                ],
            )
        )
    headers = [
        "hospital", "status", "ε spent", "ledger ε (recomputed)", "budget max ε",
        "target ε (run)", "δ", "noise σ", "max grad norm", "sample rate", "steps", "accountant",
        "test-split ε", "test-split budget", "ledger", "ledger key SHA-256",
    ]  # fmt: skip
    return _table("privacy", headers, rows, text=(0, 1, 11, 14, 15))


def epsilon_table(report: AuditReport) -> str:
    """ε after each round (the numbers of the ε plot)."""
    rounds = sorted({p.round for h in report.hospitals for p in h.epsilon_by_round})
    rows = []
    for h in report.hospitals:
        values = {p.round: p.epsilon for p in h.epsilon_by_round}
        cells = [cell("epsilon-round", number(values.get(r)), round=r) for r in rounds]
        rows.append(_row(h.name, [*cells, cell("budget", number(h.max_epsilon))]))
    return _table("epsilon-rounds", ["hospital", *[f"round {r}" for r in rounds], "budget"], rows)


def rounds_table(report: AuditReport) -> str:
    """Accuracy and AUROC of the global model at each evaluation (the numbers of the plot)."""
    rows = []
    for r in report.rounds:
        model = "final model" if r.phase == "final" else f"received in round {r.after_round + 1}"
        rows.append(
            f'<tr data-after-round="{r.after_round}" data-phase="{escape(r.phase)}">'
            f'<th scope="row">{r.after_round}</th><td class="phase">{escape(model)}</td>'
            + cell("accuracy", number(r.global_.accuracy, ".4f"))
            + cell("auroc", number(r.global_.auroc, ".4f"))
            + cell("skipped", escape(", ".join(r.skipped) or "—"))
            + "</tr>"
        )
    headers = ["rounds trained", "model", "accuracy (all)", "AUROC (all)", "skipped"]
    return _table("rounds", headers, rows, text=(0, 1, 4))


def _metric_cells(metrics: Metrics | None) -> list[str]:
    values = metrics.model_dump() if metrics is not None else {}
    return [
        cell(
            key.replace("_", "-"), number(values.get(key), "g" if key == "num_examples" else ".4f")
        )
        for key, _ in METRIC_COLUMNS
    ]


def final_table(report: AuditReport) -> str:
    """The final model's metrics on each hospital's test split, and pooled."""
    rows = [_row(h.name, _metric_cells(h.final_metrics)) for h in report.hospitals]
    rows.append(
        '<tr class="overall" data-scope="all"><th scope="row">all hospitals (weighted)'
        f"</th>{''.join(_metric_cells(report.final_global))}</tr>"
    )
    return _table("final", ["hospital", *[label for _, label in METRIC_COLUMNS]], rows)


def coordinator_sees_table(report: AuditReport) -> str:
    """Every value a hospital's replies carry: dp or declared, and why."""
    rows = [
        f'<tr class="released" data-name="{escape(v.name)}" data-record="{escape(v.record)}">'
        f'<th scope="row">{escape(v.name)}</th><td class="text record">{escape(v.record)}</td>'
        f'<td class="text release">{escape(v.release)}</td><td class="text why">'
        f"{escape(v.why)}</td></tr>"
        for v in report.coordinator_sees
    ]
    return _table("coordinator-sees", ["value", "record", "release", "why"], rows, (0, 1, 2, 3))
