"""The labels CSV beside a hospital's image folder: one row per patient, study or file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfed.shared.data.base import read_csv_file
from medfed.shared.data.pixels import ImageSet, stack_images
from medfed.shared.errors import DataError


@dataclass(frozen=True)
class LabelRow:
    label: int  # index into the declared classes
    patient: str
    site: str | None


def read_label_sheet(
    path: Path,
    key_column: str,
    label_column: str,
    classes: list[str],
    patient_column: str | None = None,
    site_column: str | None = None,
) -> dict[str, LabelRow]:
    """Rows of the labels CSV keyed by `key_column` (values read as text, stripped).

    `patient_column` (default: the key itself) names each row's patient; `site_column`, when
    the sheet has it, each row's hospital (for `partition = "natural"`).

    Raises:
        DataError: missing or unreadable file, missing column, empty or repeated key, or a
            label that is not one of `classes`.
    """
    missing = "labels CSV not found (set data.labels_path)"
    sheet = read_csv_file(path, missing, dtype=str, keep_default_na=False)
    wanted = {"data.id_column/file_column": key_column, "data.label_column": label_column}
    if patient_column is not None:
        wanted["data.id_column"] = patient_column
    for key, column in wanted.items():
        if column not in sheet.columns:
            raise DataError(
                f"{path}: no column '{column}' ({key}); the sheet has {', '.join(sheet.columns)}"
            )
    index = {name: number for number, name in enumerate(classes)}
    has_site = site_column is not None and site_column in sheet.columns
    rows: dict[str, LabelRow] = {}
    for line, record in enumerate(sheet.to_dict("records"), start=2):  # line 1: the header
        key = record[key_column].strip()
        label = record[label_column].strip()
        if not key:
            raise DataError(f"{path}: line {line}: column '{key_column}' is empty")
        if key in rows:
            raise DataError(f"{path}: line {line}: '{key}' appears twice in '{key_column}'")
        if label not in index:
            raise DataError(
                f"{path}: line {line}: label '{label}' of '{key}' is not one of data.classes "
                f"{classes} (fix the sheet or declare the class)"
            )
        patient = record[patient_column].strip() if patient_column is not None else key
        if not patient:
            raise DataError(f"{path}: line {line}: column '{patient_column}' is empty")
        site = record[site_column].strip() if has_site else None
        rows[key] = LabelRow(index[label], patient, site)
    return rows


def labelled_images(
    images: list[np.ndarray],
    sources: list[Path],
    rows: list[LabelRow],
    num_classes: int,
    size: int,
    resize: bool,
) -> ImageSet:
    """The images (resized, stacked) with each one's label, patient and site (sites only when
    every row has one).

    Raises:
        DataError: no images, or mixed sizes without `resize`.
    """
    stacked = stack_images(images, sources, size, resize)
    sites = [row.site for row in rows]
    return ImageSet(
        stacked,
        np.asarray([row.label for row in rows], dtype=np.int64),
        num_classes,
        np.asarray([row.patient for row in rows]),
        np.asarray(sites) if all(site is not None for site in sites) else None,
    )
