"""The files a deployed hospital's data is read from: one CSV/.npz file, or an image folder
(every file under it) plus its labels CSV; their version (size, mtime) and content digest.

The version names the executor's in-memory copy (cheap: one stat a file per message); the
digest of every byte names the on-disk cache entry, so a changed, added or removed image is a
new entry, never a stale one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from medfed.shared.config.models import DataConfig
from medfed.shared.errors import DataError

FOLDER_FORMATS = {"dicom": "DICOM export", "png": "PNG/JPEG"}


def is_folder(data: DataConfig) -> bool:
    """Whether `data.path` names an image folder (with a labels CSV) rather than one file."""
    return data.dataset == "imaging" and data.image_format in FOLDER_FORMATS


def data_files(data: DataConfig) -> list[Path]:
    """The files the loaders read (a folder's: every file under it, sorted, then the sheet).

    Raises:
        DataError: the file, folder or labels CSV does not exist (naming its key).
    """
    if not is_folder(data):
        if not data.path.is_file():
            raise DataError(f"data.path: {data.path} not found (point it at this hospital's CSV)")
        return [data.path]
    kind = FOLDER_FORMATS[data.image_format]
    if not data.path.is_dir():
        raise DataError(
            f"data.path: {data.path}: folder not found (point it at this hospital's {kind} folder)"
        )
    if not data.labels_path.is_file():
        raise DataError(
            f"data.labels_path: {data.labels_path} not found (the labels CSV of {data.path})"
        )
    files = sorted(path for path in data.path.rglob("*") if path.is_file())
    return [*files, data.labels_path]


def data_version(data: DataConfig) -> tuple:
    """Each file's name, size and modification time: changes when any file does.

    Raises:
        DataError: a file, folder or labels CSV is missing.
    """
    version = []
    for path in data_files(data):
        stat = path.stat()
        version.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(version)


def data_fingerprint(data: DataConfig, cache_version: str) -> str:
    """SHA-256 of the preprocessing settings and every file's name and bytes.

    Raises:
        DataError: a file, folder or labels CSV is missing.
    """
    digest = hashlib.sha256(cache_version.encode())
    digest.update(data.model_dump_json(exclude={"path"}).encode())
    for path in data_files(data):
        if is_folder(data):  # names matter in a folder (the sheet refers to them)
            name = str(path.relative_to(data.path)) if path.is_relative_to(data.path) else ""
            digest.update(f"\0{name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
