"""The hospital's privacy ledger: append-only JSONL, hash-chained, signed, never rolled back.

Line 1 is a header carrying the hospital's public key; every later line records one DP
release: a training round's DP-SGD steps, the label-count release, or an evaluation release,
each on its stream (chain.STREAMS). Each entry's `hash` is SHA-256 over its canonical JSON,
`prev_hash` chains it to the line before, and `signature` is Ed25519 over the hash.

The ledger is only used under `PrivacyLedger.locked`: one exclusive lock from re-reading the
chain to committing the plan, so two processes cannot both pass the budget check. A commit is
written at once; before the lock is released (also when the block raises) the block's commits
are fsync'd together, then the signed head file (witness.py) is rewritten. Nothing a commit
records leaves the hospital inside the block (write-ahead: a crash can only over-count). A
ledger emptied, cut or restored from an older copy is refused.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medfed.shared.crypto.signing import load_or_create_signing_key, public_key_text, sign
from medfed.shared.durable import fsync_directory
from medfed.shared.errors import LedgerError, MalformedLedgerLine
from medfed.shared.privacy.accounting import History, epsilon_of
from medfed.shared.privacy.chain import GENESIS, STREAMS, entry_hash, history_of, read_entries
from medfed.shared.privacy.ledger_lock import LOCK_TIMEOUT_S, exclusive, lock_path
from medfed.shared.privacy.verify import verify_entries
from medfed.shared.privacy.witness import (
    LEDGER_FORMAT,
    check_not_rolled_back,
    missing_ledger_error,
    write_head,
)

__all__ = ["STREAMS", "LedgerPlan", "PrivacyLedger", "ledger_file_name", "lock_path"]


def ledger_file_name(hospital: str) -> str:
    """A file-system-safe ledger name for a hospital (`VA Long Beach` → `VA_Long_Beach`)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in hospital)


@dataclass(frozen=True)
class LedgerPlan:
    """One DP release to record: `type` is a key of STREAMS; `max_grad_norm` is the
    mechanism's L2 sensitivity; `released` holds the noisy values (required for "count")."""

    type: str
    run_id: str
    round: int
    dataset_fingerprint: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    delta: float
    accountant: str
    released: tuple[float, ...] = ()


class PrivacyLedger:
    """One hospital's ledger, read and verified under its lock (see `locked`)."""

    def __init__(
        self, path: Path, key: Ed25519PrivateKey, entries: list[dict[str, Any]], head_path: Path
    ) -> None:
        self.path, self.key, self.entries, self.head_path = path, key, entries, head_path
        self._held = False
        self._unsynced = False  # entries written (in the kernel) but not yet fsync'd
        self._created = False  # a new ledger file: its directory entry needs an fsync too

    @classmethod
    @contextmanager
    def locked(
        cls,
        path: Path,
        key_dir: Path,
        witness_path: Path,
        hospital: str,
        fingerprint: str,
        timeout_s: float = LOCK_TIMEOUT_S,
    ) -> Iterator[PrivacyLedger]:
        """Hold the ledger's exclusive lock for the block: open (verify the chain and its head
        file, or create a new ledger), let the caller plan, `commit`; on leaving, fsync the
        block's commits and rewrite the head file. Send nothing a commit records before the
        block ends. Not re-entrant.

        The key is `key_dir/STEM.ed25519`. A new ledger is created only when neither the key
        nor the head file `witness_path` exists.

        Raises:
            LedgerError: the ledger does not verify; is missing, empty or shorter than its
                head file; was replaced by an older copy; its key or head file is missing or
                does not match; or another process holds the lock for `timeout_s`.
        """
        with exclusive(lock_path(path), timeout_s):
            ledger = cls._open(path, key_dir, witness_path, hospital, fingerprint)
            ledger._held = True
            try:
                yield ledger
            finally:
                ledger._held = False
                ledger._make_durable()

    @classmethod
    def _open(
        cls, path: Path, key_dir: Path, head_path: Path, hospital: str, fingerprint: str
    ) -> PrivacyLedger:
        key_file = key_dir / f"{path.stem}.ed25519"
        if not path.exists() or path.stat().st_size == 0:
            if key_file.exists() or head_path.exists():
                raise missing_ledger_error(path, key_file, head_path)
            return cls._create(path, key_dir, head_path, hospital, fingerprint)
        if not key_file.exists():
            raise LedgerError(
                f"{path}: its signing key {key_file} is missing; restore the key from backup "
                "(a ledger cannot be continued under a new key)"
            )
        key = load_or_create_signing_key(key_dir, path.stem)
        try:
            entries = read_entries(path)
            verdict = verify_entries(entries, public_key_text(key.public_key()), False)
            where, reason = verdict.bad_line, verdict.reason
        except MalformedLedgerLine as error:
            where, reason = error.line, "not a JSON entry (truncated or corrupted)"
        if reason:
            raise LedgerError(
                f"{path}: line {where}: {reason}; refusing to train on a ledger that does not "
                f"verify (run `medfed audit verify {path}` and restore it from backup)"
            )
        check_not_rolled_back(entries, key, path, head_path)
        return cls(path, key, entries, head_path)

    @classmethod
    def _create(
        cls, path: Path, key_dir: Path, head_path: Path, hospital: str, fingerprint: str
    ) -> PrivacyLedger:
        key = load_or_create_signing_key(key_dir, path.stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        ledger = cls(path, key, [], head_path)
        header = {
            "type": "header",
            "format": LEDGER_FORMAT,
            "hospital": hospital,
            "public_key": public_key_text(key.public_key()),
            "dataset_fingerprint": fingerprint,
        }
        ledger._created = True
        ledger._append(header)
        return ledger

    def history(self, stream: str = "train") -> History:
        return history_of(self.entries, stream)

    def rounds_of_run(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("type") == "round" and e["run_id"] == run_id]

    def latest(self, type: str, dataset_fingerprint: str) -> dict[str, Any] | None:
        """The last entry of `type` for that dataset, if any."""
        matching = [
            e
            for e in self.entries
            if e.get("type") == type and e.get("dataset_fingerprint") == dataset_fingerprint
        ]
        return matching[-1] if matching else None

    def count(self, type: str) -> int:
        return sum(1 for e in self.entries if e.get("type") == type)

    def epsilon(self, stream: str, delta: float, accountant: str) -> float:
        """ε of every entry on `stream`."""
        return self.epsilon_of_first(len(self.entries), delta, accountant, stream)

    def epsilon_before_run(
        self, run_id: str, delta: float, accountant: str, stream: str = "train"
    ) -> float:
        """ε on `stream` of the entries written before this run's first entry (all if none)."""
        first = next(
            (i for i, e in enumerate(self.entries) if e.get("run_id") == run_id), len(self.entries)
        )
        return self.epsilon_of_first(first, delta, accountant, stream)

    def epsilon_of_first(
        self, count: int, delta: float, accountant: str, stream: str = "train"
    ) -> float:
        """ε on `stream` of the first `count` entries at `delta` and `accountant`.

        Reuses the signed `epsilon_after` of the stream's last entry among them when it was
        composed at the same δ and accountant: the chain verified on opening, so the stream's
        entries before it are exactly the ones it composed. Otherwise recomputes.
        """
        on_stream = [e for e in self.entries[:count] if STREAMS.get(str(e.get("type"))) == stream]
        if not on_stream:
            return 0.0
        last = on_stream[-1]
        if float(last["delta"]) == delta and last["accountant"] == accountant:
            return float(last["epsilon_after"])
        return epsilon_of(history_of(on_stream, stream), delta, accountant)

    def commit(self, plan: LedgerPlan) -> dict[str, Any]:
        """Sign and append `plan` with `epsilon_after` = ε of its stream after it; returns
        the signed entry. Durable (fsync'd, head file rewritten) when `locked`'s block ends.

        Raises:
            RuntimeError: called outside `PrivacyLedger.locked`.
            ValueError: unknown type, or a count entry without its released values.
        """
        if not self._held:
            raise RuntimeError(
                f"{self.path}: commit outside PrivacyLedger.locked (the budget check and the "
                "write must hold one lock)"
            )
        if plan.type not in STREAMS:
            raise ValueError(f"unknown ledger entry type {plan.type!r} (one of {sorted(STREAMS)})")
        if plan.type == "count" and not plan.released:
            raise ValueError("a count entry records the noisy counts it released")
        stream = STREAMS[plan.type]
        step = (float(plan.noise_multiplier), float(plan.sample_rate), int(plan.steps))
        fields: dict[str, Any] = {
            "type": plan.type,
            "stream": stream,
            "run_id": plan.run_id,
            "round": int(plan.round),
            "dataset_fingerprint": plan.dataset_fingerprint,
            "noise_multiplier": step[0],
            "sample_rate": step[1],
            "steps": step[2],
            "max_grad_norm": float(plan.max_grad_norm),
            "delta": float(plan.delta),
            "accountant": plan.accountant,
            "epsilon_after": epsilon_of([*self.history(stream), step], plan.delta, plan.accountant),
        }
        if plan.released:
            fields["released"] = [float(value) for value in plan.released]
        return self._append(fields)

    def _append(self, fields: dict[str, Any]) -> dict[str, Any]:
        previous = self.entries[-1]["hash"] if self.entries else GENESIS
        entry = {"seq": len(self.entries), "time": time.time(), **fields, "prev_hash": previous}
        entry["hash"] = entry_hash(entry)
        entry["signature"] = sign(self.key, entry["hash"].encode())
        line = json.dumps(entry, sort_keys=True, allow_nan=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)  # in the kernel once closed: a killed process keeps it
        self.entries.append(entry)
        self._unsynced = True
        return entry

    def _make_durable(self) -> None:
        """fsync the entries written since the last call (and a new file's directory entry),
        then rewrite the head file: it never names an entry a power loss could take away."""
        if not self._unsynced:
            return
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if self._created:
            fsync_directory(self.path.parent)
            self._created = False
        self._unsynced = False
        last = self.entries[-1]
        write_head(self.head_path, self.key, last["seq"], last["hash"])
