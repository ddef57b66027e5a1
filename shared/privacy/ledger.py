"""The hospital's privacy ledger: append-only JSONL, hash-chained, Ed25519-signed.

Line 1 is a header carrying the hospital's public key; every later line records one round's
DP-SGD steps. Each entry's `hash` is SHA-256 over its canonical JSON (without `hash` and
`signature`), `prev_hash` chains it to the line before, and `signature` is Ed25519 over the
hash. Entries are written and fsync'd before the round's training starts (write-ahead), so a
crash can only over-count. ε is recomputable from the entries alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medfed.shared.crypto.signing import public_key_text, sign
from medfed.shared.errors import LedgerError, MalformedLedgerLine
from medfed.shared.privacy.accounting import History, epsilon_of

GENESIS = "0" * 64
# What a round entry records besides seq, time, type, prev_hash, hash and signature.
ROUND_FIELDS = (
    "run_id",
    "round",
    "dataset_fingerprint",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "max_grad_norm",
    "delta",
    "accountant",
    "epsilon_after",
)


def ledger_file_name(hospital: str) -> str:
    """A file-system-safe ledger name for a hospital (`VA Long Beach` → `VA_Long_Beach`)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in hospital)


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, without `hash`/`signature`."""
    body = {k: v for k, v in entry.items() if k not in {"hash", "signature"}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def history_of(entries: list[dict[str, Any]]) -> History:
    """Opacus history (σ, q, steps) of every round entry, whatever run or dataset it was."""
    return [
        (float(e["noise_multiplier"]), float(e["sample_rate"]), int(e["steps"]))
        for e in entries
        if e.get("type") == "round"
    ]


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Parse every line; a malformed line is a LedgerError naming its line number."""
    entries = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise MalformedLedgerLine(
                    f"{path}: line {number} is not a JSON entry", number
                ) from None
    return entries


class PrivacyLedger:
    """One hospital's ledger file, opened for appending with the hospital's signing key."""

    def __init__(self, path: Path, key: Ed25519PrivateKey, entries: list[dict[str, Any]]) -> None:
        self.path, self.key, self.entries = path, key, entries

    @classmethod
    def open(
        cls, path: Path, key: Ed25519PrivateKey, hospital: str, fingerprint: str
    ) -> PrivacyLedger:
        """Open (verifying the chain) or create the ledger at `path`.

        Raises:
            LedgerError: the existing ledger does not verify, or was signed with another key.
        """
        from medfed.shared.privacy.verify import verify_entries

        own_key = public_key_text(key.public_key())
        if path.exists() and path.stat().st_size > 0:
            entries = read_entries(path)
            verdict = verify_entries(entries, own_key, check_epsilon=False)
            if not verdict.valid:
                raise LedgerError(
                    f"{path}: line {verdict.bad_line}: {verdict.reason}; refusing to train on a "
                    "ledger that does not verify (run `medfed audit verify` and restore it)"
                )
            return cls(path, key, entries)
        path.parent.mkdir(parents=True, exist_ok=True)
        ledger = cls(path, key, [])
        ledger._append(
            {
                "type": "header",
                "hospital": hospital,
                "public_key": own_key,
                "dataset_fingerprint": fingerprint,
            }
        )
        return ledger

    def history(self) -> History:
        return history_of(self.entries)

    def rounds_of_run(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("type") == "round" and e["run_id"] == run_id]

    def epsilon_before_run(self, run_id: str, delta: float, accountant: str) -> float:
        """ε of every entry written before this run's first entry (all entries if none)."""
        first = next(
            (i for i, e in enumerate(self.entries) if e.get("run_id") == run_id), len(self.entries)
        )
        return self.epsilon_of_first(first, delta, accountant)

    def epsilon_of_first(self, count: int, delta: float, accountant: str) -> float:
        """ε of the first `count` entries (all: `len(entries)`) at `delta` and `accountant`.

        Reuses the signed `epsilon_after` of the last round among them when it was composed at
        the same δ and accountant: the chain verified on opening, so the entries before it are
        exactly the ones it composed. Otherwise recomputes from the entries.
        """
        rounds = [e for e in self.entries[:count] if e.get("type") == "round"]
        if not rounds:
            return 0.0
        last = rounds[-1]
        if float(last["delta"]) == delta and last["accountant"] == accountant:
            return float(last["epsilon_after"])
        return epsilon_of(history_of(self.entries[:count]), delta, accountant)

    def append_round(self, **fields: Any) -> dict[str, Any]:
        """Record one round's planned steps (write-ahead); returns the signed entry."""
        history = [
            *self.history(),
            (fields["noise_multiplier"], fields["sample_rate"], fields["steps"]),
        ]
        fields["epsilon_after"] = epsilon_of(history, fields["delta"], fields["accountant"])
        return self._append({"type": "round", **fields})

    def _append(self, fields: dict[str, Any]) -> dict[str, Any]:
        previous = self.entries[-1]["hash"] if self.entries else GENESIS
        entry = {"seq": len(self.entries), "time": time.time(), **fields, "prev_hash": previous}
        entry["hash"] = entry_hash(entry)
        entry["signature"] = sign(self.key, entry["hash"].encode())
        line = json.dumps(entry, sort_keys=True, allow_nan=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.entries.append(entry)
        return entry
