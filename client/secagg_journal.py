"""The hospital's on-disk journal of secure aggregation, one small JSON file per run.

It survives what the ClientApp's Context does not (a restarted hospital starts with an empty
one): whether this run already had its one setup, and, per round, the latest attempt whose
unmask request the hospital answered. Each change is written atomically and fsync'd before
the reply that depends on it leaves the hospital, so a crash can only make it refuse more.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from medfed.shared.durable import replace_json
from medfed.shared.errors import SecureAggregationRefused

SAFE_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


@dataclass
class RunJournal:
    """What one run's secure aggregation has done at this hospital."""

    setup: bool = False
    answered: dict[int, int] = field(default_factory=dict)  # round → latest answered attempt

    def answered_attempt(self, server_round: int) -> int:
        """The latest attempt of `server_round` whose unmask was answered, or -1."""
        return self.answered.get(server_round, -1)


class SecAggJournal:
    """`folder/<run_id>.json` per run (owner-only folder), beside the hospital's ledger."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, run_id: str) -> Path:
        name = (
            run_id if SAFE_RUN_ID.fullmatch(run_id) else hashlib.sha256(run_id.encode()).hexdigest()
        )
        return self.folder / f"{name}.json"

    def load(self, run_id: str) -> RunJournal:
        """This run's journal (empty if the run never reached this hospital's secure path).

        Raises:
            SecureAggregationRefused: the file exists but cannot be read; the hospital then
                refuses the run's secure aggregation rather than guess what it released.
        """
        path = self._path(run_id)
        if not path.is_file():
            return RunJournal()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["run_id"] != run_id:
                raise ValueError("another run's journal")
            answered = {int(r): int(a) for r, a in data["answered"].items()}
            return RunJournal(setup=bool(data["setup"]), answered=answered)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise SecureAggregationRefused(
                f"{path}: unreadable secure-aggregation journal of run '{run_id}'; this "
                "hospital takes no further part in the run's secure aggregation (start a new run)",
                code="secure_aggregation_journal_unreadable",
            ) from None

    def save(self, run_id: str, journal: RunJournal) -> None:
        """Replace this run's journal atomically (tmp + fsync + rename + fsync of the folder)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(run_id)
        body = {
            "run_id": run_id,
            "setup": journal.setup,
            "answered": {str(r): a for r, a in sorted(journal.answered.items())},
        }
        replace_json(path, body)
