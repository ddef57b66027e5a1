"""Uploaded images (base64 PNG or DICOM) → the model's C×H×W input, through training's window.

Every check raises `ValueError` with a sentence for the user (the request model turns it into a
422 naming the field). Pixels go through `shared.data.imaging.window_uint8`, the window training
applies; a DICOM image deeper than 8 bits is first mapped to 8 bits through its own VOI window
(WindowCenter/Width, DICOM PS3.3 C.11.2.1.2 linear function): a per-image, record-local step.
A model trained on a DICOM folder instead gets training's own pipeline (`shared.data.dicom.
windowed` with the run's fixed window, then `shared.data.pixels.to_channels`).
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut

from medfed.shared.data.dicom import windowed
from medfed.shared.data.imaging import window_uint8
from medfed.shared.data.pixels import to_channels
from medfed.shared.errors import DataError

GREY_MODES = {1: "L", 3: "RGB"}
UPLOAD = Path("the uploaded DICOM image")  # how training's functions name the file in errors


def decode_base64(text: str) -> bytes:
    """Strict base64 (a `data:...;base64,` prefix, as browsers write it, is allowed)."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 (send the file's bytes base64-encoded)") from None


def _check_grid(height: int, width: int, size: int, what: str) -> None:
    if (height, width) != (size, size):
        raise ValueError(
            f"{what} is {width}×{height} pixels; this model takes {size}×{size} "
            "(resize it before sending)"
        )


def png_pixels(data: bytes, size: int, channels: int) -> np.ndarray:
    """An 8-bit PNG of `size`×`size` (grey for 1 channel, RGB for 3) → C×H×W float32."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ValueError("not a readable PNG image") from None
    if image.format != "PNG":
        raise ValueError(f"a {image.format} image; send a PNG (or DICOM in 'dicom')")
    _check_grid(image.height, image.width, size, "the image")
    wanted = GREY_MODES[channels]
    if image.mode != wanted:
        raise ValueError(
            f"PNG mode '{image.mode}'; this model takes 8-bit "
            f"{'greyscale (mode L)' if channels == 1 else 'RGB'} images"
        )
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return window_uint8(pixels)


def _to_8_bits(dataset: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    if int(dataset.get("BitsStored", 8)) <= 8 and "RescaleSlope" not in dataset:
        return pixels.astype(np.float64)
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        raise ValueError(
            "a DICOM image deeper than 8 bits without WindowCenter/WindowWidth; "
            "add a VOI window or send an 8-bit image"
        )
    center = float(np.ravel(dataset.WindowCenter)[0])
    width = max(float(np.ravel(dataset.WindowWidth)[0]), 1.0)
    values = apply_modality_lut(pixels, dataset).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0) * 255.0


def dicom_pixels(
    data: bytes, size: int, channels: int, window: tuple[float, float] | None = None
) -> np.ndarray:
    """A single-frame DICOM image of `size`×`size` → C×H×W float32.

    `window`: the (center, width) a DICOM-trained model was trained with (else the file's own
    VOI window maps deep images to 8 bits, then training's ÷ 255 window)."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError):
        raise ValueError("not a DICOM file (no 'DICM' preamble or unreadable header)") from None
    if "PixelData" not in dataset:
        raise ValueError("a DICOM file without pixel data")
    try:
        pixels = np.asarray(dataset.pixel_array)
    except Exception as error:  # pydicom raises many types for unsupported encodings
        raise ValueError(f"DICOM pixel data cannot be decoded ({type(error).__name__})") from None
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples != channels or int(dataset.get("NumberOfFrames", 1) or 1) != 1:
        raise ValueError(
            f"a DICOM image with {samples} sample(s) per pixel"
            f"{' and several frames' if pixels.ndim > (2 if samples == 1 else 3) else ''}; "
            f"this model takes single-frame images with {channels}"
        )
    _check_grid(pixels.shape[0], pixels.shape[1], size, "the DICOM image")
    if window is not None:
        try:
            scaled = windowed(dataset, window[0], window[1], UPLOAD)
            return to_channels(scaled, channels, UPLOAD).astype(np.float32)
        except DataError as error:
            raise ValueError(str(error)) from None
    intensities = _to_8_bits(dataset, pixels)
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":  # white is low: invert
        intensities = 255.0 - intensities
    intensities = intensities[None] if channels == 1 else intensities.transpose(2, 0, 1)
    return window_uint8(np.rint(intensities).astype(np.uint8))
