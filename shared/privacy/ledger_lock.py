"""The ledger's exclusive lock: one file beside the ledger, held with flock for a whole
plan-and-commit, so two hospital processes on one ledger are serialised."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medfed.shared.errors import LedgerError

LOCK_TIMEOUT_S = 120.0


def lock_path(path: Path) -> Path:
    """The lock file beside a ledger (`NAME.jsonl.lock`); never removed, so it survives restores."""
    return path.with_name(path.name + ".lock")


@contextmanager
def exclusive(lock_file: Path, timeout_s: float) -> Iterator[None]:
    """Hold `lock_file`'s exclusive flock for the block.

    Raises:
        LedgerError: another process held it for over `timeout_s`.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LedgerError(
                        f"{lock_file}: another process has held the ledger's lock for over "
                        f"{timeout_s:.0f} s (a second hospital process on this ledger?); stop "
                        "it, then retry"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(descriptor)  # releases the lock
