"""The privacy officer's audit report: numbers equal their sources, tampering shows, one file."""

import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from medfed.server.report import build_report
from medfed.shared.crypto.signing import load_or_create_signing_key
from medfed.shared.errors import DataError
from medfed.shared.privacy.ledger import LedgerPlan, PrivacyLedger
from medfed.shared.privacy.verify import ledger_epsilon

FINGERPRINT = "f" * 64
# hospital → (ledger file stem, earlier-run rounds, this run's rounds as (σ, q, steps)).
# Full-batch steps (q = 1, as in the heart-disease demo) keep Opacus's accounting fast.
HOSPITALS = {
    "Cleveland": ("Cleveland", [], [(6.0, 1.0, 1), (6.0, 1.0, 1)]),
    "VA Long Beach": ("VA_Long_Beach", [(9.0, 1.0, 2)], [(7.5, 1.0, 1), (7.5, 1.0, 2)]),
    "Hungary": ("Hungary", [], [(4.0, 1.0, 3)]),  # exhausted: refused round 2
}
CONFIG = 'name = "audit-test"\nseed = 0\nrounds = 2\n\n[privacy]\nenabled = true\n'


def _ledger(ledger_dir, name, earlier, rounds, key_dir=None):
    stem = HOSPITALS[name][0]
    path, keys = ledger_dir / f"{stem}.jsonl", key_dir or ledger_dir / "keys"
    epsilons = []
    with PrivacyLedger.locked(path, keys, keys / f"{stem}.head", name, FINGERPRINT) as ledger:
        for run_id, plan in (("before", earlier), ("now", rounds)):
            for number, (sigma, q, steps) in enumerate(plan, start=1):
                entry = ledger.commit(LedgerPlan(
                    type="round", run_id=run_id, round=number, dataset_fingerprint=FINGERPRINT,
                    noise_multiplier=sigma, sample_rate=q, steps=steps, max_grad_norm=1.0,
                    delta=1e-5, accountant="rdp",
                ))  # fmt: skip
                epsilons.append(entry["epsilon_after"])
    return epsilons[len(earlier) :]


def _metrics(name, epsilon=None):
    line = {"accuracy": 0.75, "auroc": None, "sensitivity": 0.7, "specificity": 0.8,
            "loss": 0.5, "num_examples": 20.0}  # fmt: skip
    return line | ({"epsilon": epsilon, "train_loss": 0.6} if epsilon is not None else {})


@pytest.fixture
def run_dir(tmp_path):
    """A finished two-round run: three hospitals, real signed ledgers, Hungary exhausted."""
    root = tmp_path / "runs" / "audit"
    ledgers = root / "ledgers"
    privacy, per_round = {}, {}
    for name, (stem, earlier, rounds) in HOSPITALS.items():
        per_round[name] = _ledger(ledgers, name, earlier, rounds)
        (ledgers / "keys" / f"{stem}.ed25519").unlink()  # as deployed: only public keys travel
        privacy[name] = {
            "status": "active", "epsilon": per_round[name][-1], "delta": 1e-5,
            "target_epsilon": 1.0, "max_epsilon": 3.0, "noise_multiplier": rounds[-1][0],
            "max_grad_norm": 1.0, "sample_rate": rounds[-1][1],
            "steps": sum(s for *_, s in earlier + rounds), "accountant": "rdp",
        }  # fmt: skip
    reason = "privacy_budget_exceeded: 6 more steps would exceed the privacy budget"
    privacy["Hungary"] |= {"status": "exhausted", "max_epsilon": per_round["Hungary"][0] + 0.01,
                           "reason": reason}  # fmt: skip
    lines = []
    for number in (1, 2):
        hospitals = {n: _metrics(n, eps[number - 1]) for n, eps in per_round.items()
                     if len(eps) >= number}  # fmt: skip
        line = {"round": number, "phase": "train", "seconds": 0.4, "hospitals": hospitals,
                "global": _metrics("all")}  # fmt: skip
        lines.append(line | ({"skipped": {"Hungary": reason}} if number == 2 else {}))
    final = {n: _metrics(n) for n in HOSPITALS}
    lines.append({"round": 2, "phase": "final", "hospitals": final, "global": _metrics("all")})
    (root / "config.toml").write_text(CONFIG)
    (root / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "privacy.json").write_text(json.dumps(privacy, indent=2))
    return root


def _json(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    return report, {h["name"]: h for h in report["hospitals"]}


def _ledger_path(run_dir, name):
    return run_dir / "ledgers" / f"{HOSPITALS[name][0]}.jsonl"


class _RowCells(HTMLParser):
    """Text of each `<td class=…>` per `data-hospital` row of `table.privacy`."""

    def __init__(self):
        super().__init__()
        self.rows, self.in_table, self.row, self.cell = {}, False, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.in_table = "privacy" in (attrs.get("class") or "").split()
        elif tag == "tr" and self.in_table and "data-hospital" in attrs:
            self.row = self.rows.setdefault(attrs["data-hospital"], {})
        elif tag == "td" and self.row is not None:
            self.cell = (attrs.get("class") or "").split()[0]
            self.row[self.cell] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "tr":
            self.row = None
        elif tag == "table":
            self.in_table = False

    def handle_data(self, data):
        if self.row is not None and self.cell is not None:
            self.row[self.cell] += data


def _privacy_rows(html):
    parser = _RowCells()
    parser.feed(html)
    return parser.rows


def test_report_json_numbers_equal_privacy_json_and_the_ledgers(run_dir):
    returned = build_report(run_dir)
    report, hospitals = _json(run_dir)
    privacy = json.loads((run_dir / "privacy.json").read_text())
    assert set(hospitals) == set(privacy) and returned.config_sha256 == report["config_sha256"]
    for name, record in privacy.items():
        audit = hospitals[name]
        for key in ("epsilon", "max_epsilon", "target_epsilon", "delta", "noise_multiplier",
                    "max_grad_norm", "sample_rate"):  # fmt: skip
            assert audit[key] == pytest.approx(record[key], abs=1e-6), (name, key)
        assert audit["steps"] == record["steps"] == audit["ledger"]["steps"]
        assert audit["ledger"]["epsilon"] == pytest.approx(
            ledger_epsilon(_ledger_path(run_dir, name)), abs=1e-6
        )
        assert audit["ledger"]["valid"] and audit["ledger"]["key_pinned"]
        assert audit["epsilon_matches_ledger"] is True
    assert hospitals["VA Long Beach"]["ledger"]["runs"] == 2  # earlier runs compose


def test_report_json_keeps_the_epsilon_of_every_round_and_the_final_metrics(run_dir):
    build_report(run_dir)
    report, hospitals = _json(run_dir)
    rounds = [p["round"] for p in hospitals["Cleveland"]["epsilon_by_round"]]
    assert rounds == [1, 2] and len(hospitals["Hungary"]["epsilon_by_round"]) == 1
    assert hospitals["Hungary"]["status"] == "exhausted"
    assert any(i.startswith("Hungary: exhausted: privacy_budget") for i in report["issues"])
    assert hospitals["Cleveland"]["final_metrics"]["accuracy"] == 0.75
    assert hospitals["Cleveland"]["final_metrics"]["auroc"] is None
    assert [(r["after_round"], r["phase"]) for r in report["rounds"]] == [
        (0, "train"), (1, "train"), (2, "final"),
    ]  # fmt: skip


def test_config_fingerprint_is_the_sha256_of_config_toml(run_dir):
    import hashlib

    report = build_report(run_dir)
    assert report.config_sha256 == hashlib.sha256(CONFIG.encode()).hexdigest()
    assert report.config_sha256 in (run_dir / "report.html").read_text()


def test_an_edited_ledger_entry_shows_invalid_with_its_line_in_json_and_html(run_dir):
    path = _ledger_path(run_dir, "Cleveland")
    lines = path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["noise_multiplier"] *= 10  # claim more noise than was used: hide privacy loss
    path.write_text("\n".join([*lines[:2], json.dumps(entry), *lines[3:]]) + "\n")
    build_report(run_dir)
    _, hospitals = _json(run_dir)
    ledger = hospitals["Cleveland"]["ledger"]
    assert not ledger["valid"] and ledger["bad_line"] == 3 and "edited" in ledger["reason"]
    assert hospitals["VA Long Beach"]["ledger"]["valid"]
    cells = _privacy_rows((run_dir / "report.html").read_text())
    assert "line 3" in cells["Cleveland"]["ledger-status"]
    assert "invalid" in cells["Cleveland"]["ledger-status"]
    assert "invalid" not in cells["VA Long Beach"]["ledger-status"]


def test_a_ledger_re_signed_with_another_key_fails_against_the_pinned_key(run_dir, tmp_path):
    forged_dir = tmp_path / "forged"
    _ledger(forged_dir, "Cleveland", [], [(60.0, 1.0, 1)], key_dir=forged_dir / "attacker")
    shutil.copy(forged_dir / "Cleveland.jsonl", _ledger_path(run_dir, "Cleveland"))
    build_report(run_dir)
    report, hospitals = _json(run_dir)
    ledger = hospitals["Cleveland"]["ledger"]
    assert not ledger["valid"] and ledger["bad_line"] == 1 and "re-signed" in ledger["reason"]
    assert any("Cleveland: ledgers/Cleveland.jsonl line 1" in i for i in report["issues"])


def test_deleting_the_last_entries_shows_as_a_mismatch_with_privacy_json(run_dir):
    path = _ledger_path(run_dir, "Cleveland")
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    build_report(run_dir)
    report, hospitals = _json(run_dir)
    assert hospitals["Cleveland"]["ledger"]["valid"]  # the chain alone cannot tell
    assert hospitals["Cleveland"]["epsilon_matches_ledger"] is False
    assert any(i.startswith("Cleveland: privacy.json says") for i in report["issues"])


def test_a_private_key_beside_the_ledgers_is_a_finding(run_dir):
    load_or_create_signing_key(run_dir / "ledgers" / "keys", "Other")
    shutil.copy(run_dir / "ledgers" / "keys" / "Other.ed25519",
                run_dir / "ledgers" / "keys" / "Cleveland.ed25519")  # fmt: skip
    report = build_report(run_dir)
    assert any("Cleveland: the private signing key" in issue for issue in report.issues)


def test_a_second_ledger_for_the_same_hospital_is_a_finding(run_dir):
    shutil.copy(_ledger_path(run_dir, "Hungary"), run_dir / "ledgers" / "Hungary-old.jsonl")
    report = build_report(run_dir)
    assert "Hungary-old.jsonl: a second ledger for 'Hungary' (the report audits Hungary.jsonl)" in (
        report.issues
    )


def test_html_is_one_file_that_fetches_nothing(run_dir):
    build_report(run_dir)
    html = (run_dir / "report.html").read_text()
    for forbidden in ("http://", "https://", "src=", "<link", "<script", "@import", "<img"):
        assert forbidden not in html, forbidden
    assert "url(" not in html.replace("url(#", "")
    assert html.count("<svg") == 2  # ε against the budget; accuracy and AUROC
    ids = [part.split('"', 1)[0] for part in html.split(' id="')[1:]]
    assert len(ids) == len(set(ids)) > 0  # two inlined plots do not clash


def test_missing_privacy_json_is_a_data_error_naming_the_file(run_dir):
    (run_dir / "privacy.json").unlink()
    with pytest.raises(DataError, match=r"audit/privacy\.json: missing \(run `medfed simulate`"):
        build_report(run_dir)


def test_a_malformed_metrics_line_is_a_data_error_naming_the_line(run_dir):
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"round": 3, "hosp\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl: line 4 is not JSON"):
        build_report(run_dir)


def test_a_run_without_dp_reports_no_guarantee(run_dir):
    shutil.rmtree(run_dir / "ledgers")
    (run_dir / "config.toml").write_text(CONFIG.replace("enabled = true", "enabled = false"))
    nulls = dict.fromkeys(("epsilon", "delta", "max_grad_norm", "accountant"))
    privacy = {name: {"status": "active", **nulls} for name in HOSPITALS}
    (run_dir / "privacy.json").write_text(json.dumps(privacy))
    report = build_report(run_dir)
    assert not report.privacy_enabled and report.issues[0].startswith("privacy.enabled = false")
    assert all(h.ledger is None and h.epsilon is None for h in report.hospitals)
    assert "switched off" in report.guarantee[0]


def test_headless_chromium_shows_each_hospitals_epsilon_and_budget_in_its_row(run_dir, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium not found: install Debian's `chromium` package (apt-get install -y "
                    "chromium); this test renders report.html in a headless browser")  # fmt: skip
    build_report(run_dir)
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
        "--dump-dom", (run_dir / "report.html").as_uri(),
    ]  # fmt: skip
    dumped = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    rows = _privacy_rows(dumped.stdout)
    privacy = json.loads((run_dir / "privacy.json").read_text())
    assert set(rows) == set(privacy)
    for name, record in privacy.items():
        assert rows[name]["epsilon"] == f"{record['epsilon']:.6f}"
        assert rows[name]["budget"] == f"{record['max_epsilon']:.6f}"
        assert float(rows[name]["ledger-epsilon"]) == pytest.approx(record["epsilon"], abs=1e-6)
