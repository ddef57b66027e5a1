"""The imaging CNN (PNG and DICOM) over HTTP, on real uvicorn."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from medfed.shared.data.imaging import synthetic_lesions
from medfed.shared.models import build_model

pytestmark = pytest.mark.slow  # each module trains a run with `medfed simulate` (conftest.py)

SIZE = 16


def pixels(count: int = 3) -> np.ndarray:
    images, _ = synthetic_lesions(count, SIZE, 1, seed=7)
    return np.rint(images[:, 0] * 255).astype(np.uint8)


def png(grey: np.ndarray, mode: str = "L") -> str:
    buffer = io.BytesIO()
    Image.fromarray(grey).convert(mode).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def dicom(stored: np.ndarray, **extra) -> str:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    bits = stored.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = stored.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return base64.b64encode(buffer.getvalue()).decode()


def independent_model(served) -> torch.nn.Module:
    run = served.bundle.run
    state = torch.load(served.bundle.root / "model.pt", weights_only=True)
    model = build_model(run.model, served.bundle.schema.input_shape, 2)
    model.load_state_dict(state)
    return model.eval()


def test_png_and_dicom_give_the_probability_of_the_windowed_pixels(image_server):
    grey = pixels()
    with torch.no_grad():
        inputs = torch.from_numpy(grey[:, None].astype(np.float32) / 255.0)
        expected = torch.softmax(independent_model(image_server)(inputs), 1)[:, 1].numpy()
    client = image_server.client
    as_png = client.post("/v1/predict", json={"images": [{"png": png(g)} for g in grey]})
    assert as_png.status_code == 200, as_png.text
    got = [row["probability"] for row in as_png.json()["predictions"]]
    assert got == pytest.approx(expected, abs=2e-6)
    eight_bit = client.post("/v1/predict", json={"image": {"dicom": dicom(grey[0])}})
    deep = dicom((grey[1].astype(np.uint16) * 4), WindowCenter=510, WindowWidth=1021,
                 RescaleSlope=1, RescaleIntercept=0)  # fmt: skip
    sixteen_bit = client.post("/v1/predict", json={"image": {"dicom": deep}})
    assert eight_bit.json()["predictions"][0]["probability"] == pytest.approx(expected[0], abs=2e-6)
    assert sixteen_bit.json()["predictions"][0]["probability"] == pytest.approx(
        expected[1], abs=2e-6
    )


BAD_IMAGES = [
    ("wrong size", lambda: {"png": png(np.zeros((20, 20), np.uint8))}, "16×16"),
    ("RGB for a grey model", lambda: {"png": png(pixels(1)[0], "RGB")}, "greyscale"),
    ("not base64", lambda: {"png": "***"}, "base64"),
    ("not a PNG", lambda: {"png": base64.b64encode(b"plain text").decode()}, "PNG"),
    ("non-DICOM bytes", lambda: {"dicom": base64.b64encode(b"\0" * 300).decode()}, "DICOM"),
    ("DICOM of the wrong size", lambda: {"dicom": dicom(np.zeros((8, 8), np.uint8))}, "16×16"),
    ("both", lambda: {"png": png(pixels(1)[0]), "dicom": "AA=="}, "exactly one"),
]


@pytest.mark.parametrize("what, image, words", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_images_get_422_naming_the_problem(image_server, what, image, words):
    answer = image_server.client.post("/v1/predict", json={"image": image()})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["field"].startswith("image")
    assert words in answer.json()["message"]


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients"])
def test_image_explanations_are_heat_maps_over_the_image(image_server, method):
    body = {"image": {"png": png(pixels(1)[0])}, "method": method}
    answer = image_server.client.post("/v1/explain", json=body)
    assert answer.status_code == 200, answer.text
    heat = np.array(answer.json()["explanations"][0]["heatmap"])
    assert heat.shape == (SIZE, SIZE) and heat.min() >= 0 and heat.max() <= 1
    assert heat.max() == 1.0 or heat.max() == 0.0
    bad = image_server.client.post("/v1/explain", json=body | {"method": "lime"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "method"
