"""The hospital's memory of its last trained round per run.

A coordinator that crashes mid-round and resumes (`medfed-server --resume`) sends that round
again. If the request is identical (same run, round, instruction and global model), the
hospital answers with the update it already released: sending a released DP output again is
post-processing and costs no privacy, whereas training again would spend the round twice.

The memory is keyed on the mode as well: only plain rounds are remembered (`PLAIN`), so a
masked round's update, never released in plaintext, can never be replayed as a plain one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from medfed.client.hospital import RoundResult
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.instruction import RoundInstruction

PLAIN = "plain"  # the one mode remembered; the digest names it so modes never mix


def request_digest(
    instruction: RoundInstruction, weights: dict[str, torch.Tensor], mode: str
) -> str:
    """SHA-256 of everything that decides a round's training and of its release `mode`
    (e.g. `PLAIN`); retry attempts excluded."""
    digest = hashlib.sha256(f"{mode}:".encode())
    digest.update(instruction.model_dump_json(exclude={"secagg_attempt"}).encode())
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


class RoundMemory:
    """One file per run under `folder`, holding the run's latest trained round."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.pt"

    def recall(self, run_id: str, digest: str) -> RoundResult | None:
        """The result already released for the request with this `request_digest`, or None."""
        path = self._path(run_id)
        if not path.is_file():
            return None
        try:
            kept = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError):
            return None  # unreadable (e.g. torn by a crash): train afresh, counted afresh
        if kept.get("digest") != digest:
            return None
        evaluation = kept["evaluation"]
        return RoundResult(
            kept["state_dict"],
            TrainingReport(**kept["training"]),
            None if evaluation is None else EvaluationReport(**evaluation),
        )

    def remember(self, run_id: str, digest: str, result: RoundResult) -> None:
        """Keep `result` as the run's latest round (written atomically, owner-only folder)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(run_id)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        kept = {
            "digest": digest,
            "state_dict": result.state_dict,
            "training": result.training.as_dict(),
            "evaluation": None if result.evaluation is None else result.evaluation.as_dict(),
        }
        torch.save(kept, temporary)
        os.replace(temporary, path)
