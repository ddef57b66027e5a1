"""Durable small files: a JSON document replaced atomically and fsync'd, directory included.

For state whose loss must make the hospital refuse more, never less (the ledger's head file,
the secure-aggregation journal): after `replace_json` returns, the new content survives a crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_directory(directory: Path) -> None:
    """Make a created or renamed file's directory entry durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_json(path: Path, body: Any) -> None:
    """Write `body` as JSON to a 0600 temporary file, fsync it, rename it over `path`, and
    fsync the folder."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(body, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
