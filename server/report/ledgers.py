"""Find each hospital's ledger in RUN_DIR/ledgers and audit it from its entries alone."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

from medfed.server.report.schema import LedgerAudit
from medfed.shared.errors import MedfedError
from medfed.shared.privacy.chain import read_entries
from medfed.shared.privacy.ledger import ledger_file_name
from medfed.shared.privacy.verify import stream_epsilon, trusted_key_for, verify_ledger


def _header(path: Path) -> dict[str, Any]:
    """Line 1 of a ledger if it is a JSON object, else {} (verification reports why)."""
    try:
        with path.open(encoding="utf-8") as handle:
            header = json.loads(handle.readline())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return header if isinstance(header, dict) else {}


def find_ledgers(
    ledger_dir: Path, hospitals: list[str]
) -> tuple[dict[str, Path], list[tuple[str, Path]]]:
    """Ledger path per hospital name (by the header's `hospital`, else by file name), and the
    ledgers left over because another one already claims the same hospital.

    Ledgers that belong to none of `hospitals` are returned under their header name (or stem).
    """
    claims: dict[str, list[Path]] = {}
    by_stem = {ledger_file_name(name): name for name in hospitals}
    for path in sorted(ledger_dir.glob("*.jsonl")) if ledger_dir.is_dir() else []:
        name = str(_header(path).get("hospital") or by_stem.get(path.stem, path.stem))
        claims.setdefault(name, []).append(path)
    chosen, extra = {}, []
    for name, paths in claims.items():
        paths.sort(key=lambda path: path.stem != ledger_file_name(name))  # the expected file first
        chosen[name] = paths[0]
        extra += [(name, path) for path in paths[1:]]
    return chosen, extra


def key_fingerprint(public_key: str) -> str:
    """Hex SHA-256 of the raw Ed25519 key bytes ('' when the text is not base64)."""
    try:
        raw = base64.b64decode(public_key.strip(), validate=True)
    except (binascii.Error, ValueError):
        return ""
    return hashlib.sha256(raw).hexdigest() if raw else ""


def _entries(path: Path) -> list[dict[str, Any]] | None:
    """The ledger's entries, or None when it cannot be read as JSON lines."""
    try:
        return read_entries(path)
    except (MedfedError, OSError, UnicodeDecodeError):
        return None


def _epsilon(
    entries: list[dict[str, Any]] | None, delta: float | None, accountant: str | None, stream: str
) -> float | None:
    """ε of `stream`, or None when the ledger could not be read or its entries are malformed."""
    if entries is None:
        return None
    try:
        return stream_epsilon(entries, delta, accountant, stream)
    except (MedfedError, KeyError, TypeError, ValueError):
        return None


def audit_ledger(
    path: Path, run_dir: Path, delta: float | None, accountant: str | None
) -> LedgerAudit:
    """Verify the chain and signatures (against the pinned key when one lies in
    `ledgers/keys/`) and recompute ε at `delta` with `accountant` (the ledger's own when None):
    the train stream's as `epsilon`, the test stream's (evaluation releases) as
    `evaluation_epsilon`, None when there are none. A ledger that does not verify still has
    its ε recomputed from the entries as they stand.
    """
    trusted = trusted_key_for(path)
    verdict = verify_ledger(path, trusted)
    entries = _entries(path)
    rounds = [e for e in entries or [] if e.get("type") == "round"]
    has_evaluations = any(e.get("type") == "evaluation" for e in entries or [])
    try:
        steps: int | None = sum(int(e["steps"]) for e in rounds)
    except (KeyError, TypeError, ValueError):
        steps = None
    public_key = verdict.public_key or str(_header(path).get("public_key", ""))
    return LedgerAudit(
        file=str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path),
        valid=verdict.valid,
        entries=verdict.entries,
        round_entries=len(rounds),
        runs=len({str(e.get("run_id")) for e in rounds}),
        bad_line=verdict.bad_line,
        reason=verdict.reason,
        epsilon=_epsilon(entries, delta, accountant, "train"),
        evaluation_epsilon=(
            _epsilon(entries, delta, accountant, "test") if has_evaluations else None
        ),
        steps=steps,
        public_key=public_key,
        public_key_sha256=key_fingerprint(public_key),
        key_pinned=trusted is not None,
        private_key_present=(path.parent / "keys" / f"{path.stem}.ed25519").exists(),
    )
