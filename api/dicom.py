"""DICOM input for image models, converted in the API so the worker's image path stays PNG-only. numpy and pydicom
only (never torch).

Steps: read the Part 10 file → refuse modalities the model was not built for (its `dicom.modalities`) → check
the pixel module (tags present, one frame, within the pixel limit, a transfer syntax an installed decoder
handles) → decode → modality LUT (rescale) → VOI LUT or window (the file's own; else the model's
`dicom.default_window`) → MONOCHROME1 inverted so that bright is dense, like every other input → an 8-bit
grayscale PNG. Colour images (secondary captures) become luma.

Multi-frame files are refused rather than reduced to their first frame: which frame a study's reader meant is
not knowable here, and classifying the wrong one silently is worse than asking for one frame per job.

Nothing of the header is kept except the Study, Series and SOP Instance UIDs (to reference the study from the
FHIR result): no names, dates or other patient data reach the database."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import UID

from shared.errors import FieldError, ValidationFailed
from shared.modelspec import DicomPolicy, ModelSpec

REFERENCE_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
PIXEL_TAGS = {"Rows": "(0028,0010)", "Columns": "(0028,0011)", "BitsAllocated": "(0028,0100)",
              "SamplesPerPixel": "(0028,0002)", "PhotometricInterpretation": "(0028,0004)",
              "PixelData": "(7FE0,0010)"}
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Converted:
    png: bytes
    refs: dict[str, str]  # the reference UIDs the file had


def dicom_to_png(data: bytes, spec: ModelSpec, *, field: str, max_pixels: int) -> Converted:
    """A DICOM file → an 8-bit grayscale PNG and its reference UIDs; any problem is a 422 naming it."""
    if spec.dicom is None:
        raise _invalid(field, f"model {spec.name} does not accept DICOM; send PNG or JPEG")
    ds = _read(data, field)
    _check_modality(ds, spec.dicom, spec.name, field)
    _check_pixel_module(ds, field, max_pixels)
    pixels = _decode(ds, field)
    try:
        unit = _to_unit_gray(pixels, ds, spec.dicom)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _invalid(field, f"the DICOM pixel values cannot be mapped to grayscale (LUT or window): {exc}") from exc
    refs = {name: str(ds.get(name)) for name in REFERENCE_UIDS if ds.get(name)}
    return Converted(png=_png(unit), refs=refs)


def _read(data: bytes, field: str) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    # A parser fed arbitrary bytes fails in many ways (InvalidDicomError, struct/EOF/value errors); each is the
    # client's broken file, so each is a 422.
    except Exception as exc:
        raise _invalid(field, f"not a readable DICOM Part 10 file: {exc}") from exc


def _check_modality(ds: Dataset, policy: DicomPolicy, model: str, field: str) -> None:
    modality = str(ds.get("Modality") or "").strip().upper()
    accepted = ", ".join(policy.modalities)
    if not modality:
        raise _invalid(field, f"the DICOM file has no Modality (0008,0060); model {model} accepts {accepted}")
    if modality not in policy.modalities:
        raise _invalid(field, f"modality {modality} is not accepted by model {model}, which was built for "
                              f"{accepted}")


def _check_pixel_module(ds: Dataset, field: str, max_pixels: int) -> None:
    missing = [f"{name} {tag}" for name, tag in PIXEL_TAGS.items() if ds.get(name) in (None, b"", "")]
    if missing:
        raise _invalid(field, f"the DICOM file lacks {', '.join(missing)}: no image to classify")
    frames, rows, columns = (_integer(ds, name, field) for name in ("NumberOfFrames", "Rows", "Columns"))
    if frames > 1:
        raise _invalid(field, f"multi-frame DICOM ({frames} frames) is not accepted; send one frame per job")
    if rows * columns > max_pixels:
        raise _invalid(field, f"the image has {columns}x{rows} pixels; the limit is {max_pixels} pixels")
    syntax = _transfer_syntax(ds, field)
    if syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise _invalid(field, f"transfer syntax {syntax} ({syntax.name}) cannot be decoded here: no decoder "
                                  "is installed for it; send it uncompressed or as JPEG baseline, JPEG 2000 or RLE")


def _integer(ds: Dataset, name: str, field: str) -> int:
    """An integer element; a wrong VR or a non-numeric value is the sender's error (422), not ours."""
    try:
        return int(ds.get(name) or (1 if name == "NumberOfFrames" else 0))
    except (TypeError, ValueError) as exc:
        raise _invalid(field, f"the DICOM element {name} is not an integer: {exc}") from exc


def _transfer_syntax(ds: Dataset, field: str) -> UID:
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if not syntax:
        raise _invalid(field, "the DICOM file has no Transfer Syntax UID (0002,0010)")
    return UID(str(syntax))


def _decode(ds: Dataset, field: str) -> NDArray[Any]:
    syntax = _transfer_syntax(ds, field)
    try:
        pixels: NDArray[Any] = ds.pixel_array
    # Decoders (pydicom's own, Pillow, openjpeg) report corrupt or truncated data with assorted exceptions.
    except Exception as exc:
        raise _invalid(field, f"the pixel data cannot be decoded ({syntax} {syntax.name}): {exc}") from exc
    if pixels.ndim not in (2, 3) or pixels.size == 0:
        raise _invalid(field, f"unexpected pixel array of shape {pixels.shape}")
    return pixels


def _to_unit_gray(pixels: NDArray[Any], ds: Dataset, policy: DicomPolicy) -> Floats:
    """Stored values → display values in [0, 1], white = dense."""
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric in MONOCHROME and pixels.ndim == 2:
        values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
        values, low, high = _voi(values, ds, policy)
        unit = _scale(values, low, high)
        return 1.0 - unit if photometric == "MONOCHROME1" else unit
    if photometric == "PALETTE COLOR":
        rgb = np.asarray(apply_color_lut(pixels, ds), dtype=np.float64)
        top = 65535.0 if rgb.max() > 255 else 255.0
    else:  # RGB or YBR_* (pydicom has converted YBR to RGB)
        rgb = np.asarray(pixels, dtype=np.float64)
        top = float(2 ** int(ds.get("BitsStored") or ds.BitsAllocated) - 1)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"{photometric} pixel array of shape {rgb.shape} is not colour")
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    return _scale(luma, 0.0, top)


def _voi(values: Floats, ds: Dataset, policy: DicomPolicy) -> tuple[Floats, float, float]:
    """Apply the file's VOI LUT or window, else the model's default; return the values and their output range."""
    lut = ds.get("VOILUTSequence")
    if lut:
        bits = int(lut[0].LUTDescriptor[2])
        return np.asarray(apply_voi_lut(values, ds, prefer_lut=True), dtype=np.float64), 0.0, float(2**bits - 1)
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        if policy.default_window == "minmax":
            return values, float(values.min()), float(values.max())
        ds.WindowCenter, ds.WindowWidth = policy.default_window.center, policy.default_window.width
    windowed = np.asarray(apply_voi_lut(values, ds, prefer_lut=False), dtype=np.float64)
    # The window maps everything below it to the bottom of its output range and above it to the top: probing
    # far outside the window gives that range, whatever pydicom derives it from (bits stored, rescale).
    center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    probe = np.array([center - 100 * width - 1, center + 100 * width + 1], dtype=np.float64)
    low, high = np.asarray(apply_voi_lut(probe, ds, prefer_lut=False), dtype=np.float64)
    return windowed, float(low), float(high)


def _first(value: Any) -> float:
    """Window Center/Width may hold several alternative windows; pydicom applies the first."""
    return float(value[0]) if isinstance(value, Sequence) and not isinstance(value, str | bytes) else float(value)


def _scale(values: Floats, low: float, high: float) -> Floats:
    if not np.isfinite(values).all():
        raise ValueError("the pixel values are not finite")
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _png(unit: Floats) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(unit * 255.0).astype(np.uint8)).save(buf, format="PNG")  # 2-D uint8: mode L
    return buf.getvalue()


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[FieldError(field, message)])
