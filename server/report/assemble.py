"""Assemble the audit report from the run files and the ledgers, with the officer's findings."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from medfed.server.report.guarantee import guarantee_text
from medfed.server.report.ledgers import audit_ledger, find_ledgers
from medfed.server.report.run_files import MetricsLine, PrivacyRecord, RunFiles, numbers
from medfed.server.report.schema import (
    AuditReport,
    HospitalAudit,
    LedgerAudit,
    Metrics,
    ReleasedValue,
    RoundEpsilon,
    RoundMetrics,
)
from medfed.shared.hospital_report import RELEASED_FIELDS

EPSILON_TOLERANCE = 1e-6


def _round_metrics(line: MetricsLine) -> RoundMetrics:
    after = line.round if line.phase == "final" else line.round - 1
    return RoundMetrics(
        after_round=after,
        phase=line.phase,
        seconds=line.seconds,
        global_=Metrics.model_validate(numbers(line.global_)),
        hospitals={n: Metrics.model_validate(numbers(m)) for n, m in line.hospitals.items()},
        skipped=line.skipped,
    )


def _epsilon_by_round(name: str, lines: list[MetricsLine]) -> list[RoundEpsilon]:
    series = []
    for line in lines:
        epsilon = numbers(line.hospitals.get(name, {})).get("epsilon")
        if line.phase == "train" and epsilon is not None:
            series.append(RoundEpsilon(round=line.round, epsilon=epsilon))
    return series


def _hospital(
    name: str,
    record: PrivacyRecord,
    ledger: LedgerAudit | None,
    lines: list[MetricsLine],
    final: MetricsLine | None,
) -> HospitalAudit:
    epsilon, budget = record.epsilon, record.max_epsilon
    matches = None
    if epsilon is not None and ledger is not None and ledger.epsilon is not None:
        matches = math.isclose(epsilon, ledger.epsilon, rel_tol=0, abs_tol=EPSILON_TOLERANCE)
    final_metrics = final.hospitals.get(name) if final is not None else None
    return HospitalAudit(
        name=name,
        **record.model_dump(),
        within_budget=None if epsilon is None or budget is None else epsilon <= budget,
        ledger=ledger,
        epsilon_matches_ledger=matches,
        epsilon_by_round=_epsilon_by_round(name, lines),
        final_metrics=None if final_metrics is None else Metrics(**numbers(final_metrics)),
    )


def _issues(hospital: HospitalAudit, privacy_enabled: bool) -> list[str]:
    """What a privacy officer must look at for one hospital."""
    name, ledger, found = hospital.name, hospital.ledger, []
    if hospital.privacy == "off":
        found.append(f"{name}: trained without differential privacy: its replies were exact")
    if hospital.status in {"exhausted", "refused"}:
        found.append(f"{name}: {hospital.status}: {hospital.reason or 'no reason recorded'}")
    if ledger is None:
        if privacy_enabled:
            found.append(f"{name}: no ledger in ledgers/; its ε cannot be checked")
        return found
    if not ledger.valid:
        where = f" line {ledger.bad_line}" if ledger.bad_line is not None else ""
        found.append(f"{name}: {ledger.file}{where} does not verify: {ledger.reason}")
    if hospital.epsilon_matches_ledger is False:
        cause = (
            "entries removed from the end of the ledger, or a stale privacy.json"
            if ledger.valid
            else "the ledger does not verify"
        )
        found.append(
            f"{name}: privacy.json says ε = {hospital.epsilon:.6f} but the ledger recomputes "
            f"ε = {ledger.epsilon:.6f} ({cause})"
        )
    return found


def _key_issues(hospitals: list[HospitalAudit]) -> list[str]:
    """Where the signing keys weaken what verification shows (one finding for all hospitals)."""
    ledgers = [(h.name, h.ledger) for h in hospitals if h.ledger is not None]
    unpinned = [name for name, ledger in ledgers if not ledger.key_pinned]
    exposed = [name for name, ledger in ledgers if ledger.private_key_present]
    found = []
    if unpinned:
        found.append(
            f"{', '.join(unpinned)}: no pinned public key in ledgers/keys/; signatures were "
            "checked against each ledger's own header key only (a re-signed ledger would pass)"
        )
    if exposed:
        found.append(
            f"{', '.join(exposed)}: the private signing key lies beside the ledger in "
            "ledgers/keys/; whoever holds this directory could re-sign it (expected in a "
            "simulation; in deployment the key never leaves the hospital)"
        )
    return found


def assemble(run_dir: Path, files: RunFiles) -> AuditReport:
    """The report of `run_dir` from its parsed files and its ledgers (read here)."""
    config = files.config
    privacy_enabled = bool(config.get("privacy", {}).get("enabled", True))
    final = next((line for line in reversed(files.metrics) if line.phase == "final"), None)
    names = list(files.privacy)
    names += sorted({n for line in files.metrics for n in line.hospitals} - set(names))
    ledger_paths, extra_ledgers = find_ledgers(run_dir / "ledgers", names)
    hospitals, issues = [], []
    for name in sorted(names):
        record = files.privacy.get(name, PrivacyRecord())
        path = ledger_paths.get(name)
        ledger = audit_ledger(path, run_dir, record.delta, record.accountant) if path else None
        hospital = _hospital(name, record, ledger, files.metrics, final)
        hospitals.append(hospital)
        if name not in files.privacy:
            issues.append(f"{name}: in metrics.jsonl but not in privacy.json")
        if hospital.within_budget is False:
            issues.append(f"{name}: ε = {hospital.epsilon:.6f} exceeds max_epsilon")
        issues += _issues(hospital, privacy_enabled)
    for name in sorted(set(ledger_paths) - set(names)):
        issues.append(f"{ledger_paths[name].name}: ledger of '{name}', absent from privacy.json")
    for name, path in extra_ledgers:
        audited = ledger_paths[name].name
        issues.append(f"{path.name}: a second ledger for '{name}' (the report audits {audited})")
    issues += _key_issues(hospitals)
    if not privacy_enabled:
        issues.insert(0, "privacy.enabled = false: this run has no differential privacy")
    stopped = next((line.stopped for line in files.metrics if line.stopped), None)
    if stopped:
        issues.append(f"the run stopped early: {stopped}")
    return AuditReport(
        generated_at=datetime.now(UTC),
        run_dir=str(run_dir),
        run_name=str(config.get("name", run_dir.name)),
        config_sha256=files.config_sha256,
        privacy_enabled=privacy_enabled,
        rounds_planned=config.get("rounds") if isinstance(config.get("rounds"), int) else None,
        rounds_completed=sum(line.phase == "train" for line in files.metrics),
        status="stopped" if stopped else ("completed" if final is not None else "incomplete"),
        stopped=stopped,
        hospitals=hospitals,
        rounds=[_round_metrics(line) for line in files.metrics],
        final_global=None if final is None else Metrics(**numbers(final.global_)),
        guarantee=guarantee_text(privacy_enabled, hospitals),
        coordinator_sees=[ReleasedValue(**vars(field)) for field in RELEASED_FIELDS],
        issues=issues,
    )
