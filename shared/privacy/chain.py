"""The ledger's chain format: entry types and streams, canonical JSON, hashes, Opacus history.

Shared by the ledger (which writes entries) and the verifier (which checks them), so neither
imports the other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medfed.shared.errors import MalformedLedgerLine
from medfed.shared.privacy.accounting import History

GENESIS = "0" * 64
# Entry type → the split whose records the mechanism touches. Each stream is its own
# add/remove-one-record guarantee, composed over that stream's entries only.
STREAMS = {"round": "train", "count": "train", "evaluation": "test"}
# What every mechanism entry records besides seq, time, type, stream, prev_hash, hash, signature.
# max_grad_norm is the mechanism's L2 sensitivity (the clipping norm C for DP-SGD rounds).
MECHANISM_FIELDS = (
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
# Extra fields a type requires: a count entry records the noisy counts it released.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {"round": (), "count": ("released",), "evaluation": ()}


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, without `hash`/`signature`."""
    body = {k: v for k, v in entry.items() if k not in {"hash", "signature"}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def stream_of(entry: dict[str, Any]) -> str | None:
    """The stream an entry spends on (None for the header or an unknown type)."""
    return STREAMS.get(str(entry.get("type")))


def history_of(entries: list[dict[str, Any]], stream: str) -> History:
    """Opacus history (σ, q, steps) of every entry on `stream`, whatever run or dataset it was.

    A count or evaluation release is one Gaussian step at rate 1: (σ, 1.0, 1) as recorded.
    """
    return [
        (float(e["noise_multiplier"]), float(e["sample_rate"]), int(e["steps"]))
        for e in entries
        if stream_of(e) == stream
    ]


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Parse every line; a line that is not a UTF-8 JSON object is a MalformedLedgerLine
    naming its 1-based number."""
    entries: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                entry = None
            if not isinstance(entry, dict):
                raise MalformedLedgerLine(f"{path}: line {number} is not a JSON entry", number)
            entries.append(entry)
    return entries
