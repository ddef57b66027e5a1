"""Verify a privacy ledger from its entries alone: chain, hashes, signatures, ε per stream."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfed.shared.crypto.signing import public_key_from_text, signature_valid
from medfed.shared.errors import LedgerError, MalformedLedgerLine
from medfed.shared.privacy.accounting import epsilon_of
from medfed.shared.privacy.chain import (
    GENESIS,
    MECHANISM_FIELDS,
    STREAMS,
    TYPE_FIELDS,
    entry_hash,
    history_of,
    read_entries,
)


@dataclass(frozen=True)
class LedgerVerdict:
    """Outcome of a verification; `bad_line` is 1-based (None when valid)."""

    valid: bool
    entries: int
    hospital: str = ""
    public_key: str = ""
    bad_line: int | None = None
    reason: str = ""


def verify_entries(
    entries: list[dict[str, Any]], trusted_key: str | None = None, check_epsilon: bool = True
) -> LedgerVerdict:
    """Check every entry in order; stops at the first problem.

    `trusted_key` (base64 Ed25519) is the hospital's key as known out of band; without it
    signatures are checked against the header's own key only. `check_epsilon` also
    recomputes each entry's epsilon_after (the audit does; a hospital re-opening its own
    signed ledger need not, since it recomputes ε from the history anyway).
    """
    if not entries:
        return LedgerVerdict(False, 0, bad_line=1, reason="empty ledger (no header)")
    header = entries[0]
    hospital = str(header.get("hospital", ""))
    if header.get("type") != "header" or "public_key" not in header:
        return LedgerVerdict(
            False,
            len(entries),
            hospital,
            bad_line=1,
            reason="first entry is not a header with a public key",
        )
    key_text = str(header["public_key"])
    if trusted_key is not None and key_text.strip() != trusted_key.strip():
        return LedgerVerdict(
            False,
            len(entries),
            hospital,
            key_text,
            1,
            "header key is not the hospital's trusted key (re-signed ledger)",
        )
    try:
        public_key = public_key_from_text(key_text)
    except LedgerError as error:
        return LedgerVerdict(False, len(entries), hospital, key_text, 1, str(error))
    previous = GENESIS
    for index, entry in enumerate(entries):
        line = index + 1

        def bad(reason: str, line: int = line) -> LedgerVerdict:
            return LedgerVerdict(False, len(entries), hospital, key_text, line, reason)

        if entry.get("seq") != index:
            return bad(
                f"seq is {entry.get('seq')!r}, expected {index} (entry missing, moved or inserted)"
            )
        if entry.get("prev_hash") != previous:
            return bad("prev_hash does not match the previous entry's hash (chain broken)")
        if entry.get("hash") != entry_hash(entry):
            return bad("hash does not match the entry's contents (entry edited)")
        if not signature_valid(
            public_key, str(entry.get("signature", "")), str(entry["hash"]).encode()
        ):
            return bad("signature does not verify under the ledger's key")
        if index > 0:
            problem = _mechanism_problem(entry)
            if problem:
                return bad(problem)
            if check_epsilon:
                stream = STREAMS[entry["type"]]
                recomputed = epsilon_of(
                    history_of(entries[1 : index + 1], stream),
                    float(entry["delta"]),
                    str(entry["accountant"]),
                )
                if not math.isclose(
                    recomputed, float(entry["epsilon_after"]), rel_tol=1e-9, abs_tol=1e-9
                ):
                    return bad(
                        f"epsilon_after {entry['epsilon_after']} differs from the {stream} "
                        f"stream's recomputed {recomputed}"
                    )
        previous = entry["hash"]
    return LedgerVerdict(True, len(entries), hospital, key_text)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mechanism_problem(entry: dict[str, Any]) -> str:
    """Why `entry` is not a well-formed mechanism entry ('' when it is)."""
    kind = entry.get("type")
    if kind not in STREAMS:
        return f"not a mechanism entry (type {kind!r}; expected one of {', '.join(STREAMS)})"
    missing = [f for f in (*MECHANISM_FIELDS, *TYPE_FIELDS[kind]) if f not in entry]
    if missing:
        return f"{kind} entry missing {', '.join(missing)}"
    numbers = ("noise_multiplier", "sample_rate", "max_grad_norm", "delta", "epsilon_after")
    wrong = [f for f in numbers if not _is_number(entry[f])]
    wrong += [f for f in ("round", "steps") if not isinstance(entry[f], int) or entry[f] < 0]
    if "released" in entry and not (
        isinstance(entry["released"], list) and all(map(_is_number, entry["released"]))
    ):
        wrong.append("released")
    if wrong:
        return f"{kind} entry has malformed {', '.join(wrong)}"
    # Entries written before streams existed are rounds without the field: train, as now.
    if entry.get("stream", STREAMS[kind]) != STREAMS[kind]:
        return f"{kind} entry says stream {entry['stream']!r}, expected {STREAMS[kind]!r}"
    return ""


def trusted_key_for(ledger_path: Path) -> str | None:
    """The hospital's public key kept beside the ledger (`keys/NAME.ed25519.pub`), if any."""
    candidate = ledger_path.parent / "keys" / f"{ledger_path.stem}.ed25519.pub"
    return candidate.read_text().strip() if candidate.exists() else None


def verify_ledger(path: Path, trusted_key: str | None = None) -> LedgerVerdict:
    """Verify the ledger file at `path` (malformed lines are reported, not raised)."""
    try:
        entries = read_entries(path)
    except MalformedLedgerLine as error:
        reason = "not a JSON entry (truncated or corrupted)"
        return LedgerVerdict(False, error.line - 1, bad_line=error.line, reason=reason)
    except OSError as error:
        return LedgerVerdict(False, 0, bad_line=None, reason=f"unreadable: {error}")
    return verify_entries(entries, trusted_key)


def ledger_epsilon(
    path: Path, delta: float | None = None, accountant: str | None = None, stream: str = "train"
) -> float:
    """ε of `stream` recomputed from the entries alone (δ and accountant default to the
    stream's last entry's; 0.0 when the stream has no entries).

    Raises:
        LedgerError: unreadable ledger.
    """
    return stream_epsilon(read_entries(path), delta, accountant, stream)


def stream_epsilon(
    entries: list[dict[str, Any]],
    delta: float | None = None,
    accountant: str | None = None,
    stream: str = "train",
) -> float:
    """`ledger_epsilon` of entries already read."""
    on_stream = [e for e in entries if STREAMS.get(str(e.get("type"))) == stream]
    if not on_stream:
        return 0.0
    return epsilon_of(
        history_of(on_stream, stream),
        delta if delta is not None else float(on_stream[-1]["delta"]),
        accountant or str(on_stream[-1]["accountant"]),
    )
