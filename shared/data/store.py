"""One hospital's preprocessed arrays on disk: an `.npz` file (no pickle), written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from medfed.shared.data.base import HospitalData
from medfed.shared.errors import DataError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def save_hospital_data(data: HospitalData, path: Path) -> None:
    """Write `data` to `path` (a temporary file renamed into place: a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as stream:
        np.savez(
            stream,
            **{name: getattr(data, name) for name in ARRAYS},
            name=np.array(data.name),
            num_classes=np.array(data.num_classes),
            fingerprint=np.array(data.fingerprint),
        )
    os.replace(temporary, path)


def load_hospital_data(path: Path, fix: str) -> HospitalData:
    """The data `save_hospital_data` wrote to `path`.

    Raises:
        DataError: the file is missing or unreadable (`fix` says what recreates it).
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            return HospitalData(
                name=str(stored["name"]),
                **{name: stored[name] for name in ARRAYS},
                num_classes=int(stored["num_classes"]),
                fingerprint=str(stored["fingerprint"]),
            )
    except (OSError, KeyError, ValueError) as error:
        raise DataError(
            f"{path}: preprocessed data missing or unreadable ({error}); {fix}"
        ) from None
