"""A model trained on a DICOM folder is served through training's own fixed window."""

import io

import numpy as np
import pytest

from medfed.serve.images import dicom_pixels
from medfed.serve.inputs import input_schema
from medfed.shared.config import RunConfig
from medfed.simulations.synthetic_dicom import WINDOW_CENTER, WINDOW_WIDTH, ct_image


def _dicom_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    ct_image(pixels, "P1", "1.2.3", "1.2.3.4", 1).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _dicom_run() -> RunConfig:
    return RunConfig.model_validate(
        {
            "name": "dicom",
            "data": {
                "dataset": "imaging",
                "image_format": "dicom",
                "path": "/srv/export",
                "labels_path": "/srv/export/labels.csv",
                "classes": ["normal", "lesion"],
                "window_center": WINDOW_CENTER,
                "window_width": WINDOW_WIDTH,
                "image_size": 8,
            },
            "model": {"name": "cnn"},
        }
    )


def test_served_dicom_pixels_are_the_pixels_the_ct_export_encodes():
    # ct_image stores p as Hounsfield units that the soft-tissue window maps back to p.
    pixels = np.random.default_rng(0).uniform(0, 1, (8, 8))
    schema = input_schema(_dicom_run(), 2)
    served = dicom_pixels(_dicom_bytes(pixels), 8, 1, schema.dicom_window)
    assert served.shape == (1, 8, 8)
    assert np.max(np.abs(served[0] - pixels)) <= 0.5 / WINDOW_WIDTH + 1e-6
    assert schema.classes == ("normal", "lesion")
    assert f"center {WINDOW_CENTER:g}" in schema.window


def test_a_model_not_trained_on_dicom_keeps_the_file_window_rule():
    # 12-bit pixels without a VOI window: only a DICOM-trained model knows the window.
    with pytest.raises(ValueError, match="WindowCenter"):
        dicom_pixels(_dicom_bytes(np.zeros((8, 8))), 8, 1)
