"""The ledger's head file: the signed (seq, hash) of its last entry, kept apart from the ledger.

A chain cut at the end, or an older backup copy, is still a valid chain; only something that
remembers the last entry can refuse it. The head file is rewritten atomically after every
commit, and a ledger that no longer holds the entry it names is refused. Restoring the ledger
AND its head file from the same older backup cannot be detected locally (nothing else
remembers more): keep the head file out of the ledger's backups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medfed.shared.crypto.signing import sign, signature_valid
from medfed.shared.durable import replace_json
from medfed.shared.errors import LedgerError

LEDGER_FORMAT = 2  # a header with a format has a head file; older ledgers adopt one once


@dataclass(frozen=True)
class Head:
    """The last entry the hospital committed: its `seq` and `hash`."""

    seq: int
    hash: str


def head_message(seq: int, entry_hash: str) -> bytes:
    """The bytes the head's signature covers: ASCII `seq:hash`."""
    return f"{seq}:{entry_hash}".encode()


def write_head(path: Path, key: Ed25519PrivateKey, seq: int, entry_hash: str) -> None:
    """Atomically replace the head file with a signed {seq, hash, signature} (tmp+fsync+rename)."""
    body = {"seq": seq, "hash": entry_hash, "signature": sign(key, head_message(seq, entry_hash))}
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_json(path, body)


def read_head(path: Path, public_key: Ed25519PublicKey) -> Head:
    """The head recorded in `path`, its signature checked under the hospital's `public_key`.

    Raises:
        LedgerError: unreadable, malformed, or not signed by the hospital's key.
    """
    try:
        body: Any = json.loads(path.read_text(encoding="utf-8"))
        head = Head(int(body["seq"]), str(body["hash"]))
        signature = str(body["signature"])
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as error:
        raise LedgerError(
            f"{path}: unreadable ledger head file ({type(error).__name__}: {error}); restore it "
            "from where it is kept"
        ) from None
    if head.seq < 0 or not signature_valid(
        public_key, signature, head_message(head.seq, head.hash)
    ):
        raise LedgerError(
            f"{path}: the ledger head file's signature does not verify under the hospital's "
            "key (edited or from another ledger); restore the head file from where it is kept"
        )
    return head


def check_against_head(
    entries: list[dict[str, Any]], head: Head, ledger_path: Path, head_path: Path
) -> None:
    """The ledger must still hold the entry the head names; it may be longer (a crash came
    between the ledger's fsync and the head's rewrite).

    Raises:
        LedgerError: the ledger is shorter than its head, or holds another entry at that seq
            (cut, or restored from an older or another copy).
    """
    if head.seq >= len(entries):
        raise LedgerError(
            f"{ledger_path} ends at seq {len(entries) - 1} but its head file {head_path} "
            f"records seq {head.seq}: the ledger was truncated or restored from an older "
            "backup, and training on it would spend the budget again; restore the newest "
            "copy of the ledger"
        )
    if entries[head.seq].get("hash") != head.hash:
        raise LedgerError(
            f"{ledger_path}: entry seq {head.seq} is not the one its head file {head_path} "
            "records: the ledger was replaced by an older or another copy (forked); restore "
            "the copy of the ledger that matches the head file"
        )


def check_not_rolled_back(
    entries: list[dict[str, Any]], key: Ed25519PrivateKey, ledger_path: Path, head_path: Path
) -> None:
    """Check a verified ledger against its head file, rewriting the head when the ledger is
    ahead of it; a ledger from before head files (no header `format`, no `stream`) adopts one.

    Raises:
        LedgerError: the head file is missing, does not verify, or the ledger was rolled back.
    """
    last = entries[-1]
    if head_path.exists():
        head = read_head(head_path, key.public_key())
        check_against_head(entries, head, ledger_path, head_path)
        if head.seq < last["seq"]:  # a crash came between the ledger's fsync and the head's
            write_head(head_path, key, last["seq"], last["hash"])
    elif "format" not in entries[0] and not any("stream" in e for e in entries):
        write_head(head_path, key, last["seq"], last["hash"])
    else:
        raise LedgerError(
            f"{head_path}: the head file of {ledger_path} is missing; without it a ledger "
            "restored from an older backup cannot be told from the newest. Restore the head "
            "file from where it is kept"
        )


def missing_ledger_error(ledger_path: Path, key_file: Path, head_path: Path) -> LedgerError:
    """The refusal of a missing or empty ledger whose key or head file still exists."""
    state = "empty" if ledger_path.exists() else "missing"
    held = " and ".join(str(p) for p in (key_file, head_path) if p.exists())
    return LedgerError(
        f"{ledger_path} is {state} but {held} exists: this hospital has a ledger, and starting "
        "a new one would spend its budget again. Restore the ledger from backup; only if this "
        f"dataset never trained, remove {key_file} AND {head_path} to start a new ledger identity"
    )
