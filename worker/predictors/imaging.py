"""Decoding stored image bytes into the array a model was trained on: grayscale in [0, 1], centre-cropped to
a square and resized, as MedMNIST built its 28x28 images from the original radiographs."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import InvalidInput

FloatImage = NDArray[np.float32]


def decode_grayscale(data: bytes, *, max_pixels: int) -> FloatImage:
    """Any PNG/JPEG (8- or 16-bit, grayscale, palette, RGB(A), CMYK) → 2-D float32 array in [0, 1]."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise InvalidInput(f"image of {img.width}x{img.height} exceeds {max_pixels} pixels")
            return _to_unit_gray(ImageOps.exif_transpose(img))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"the image cannot be decoded: {exc}") from exc


def _to_unit_gray(img: Image.Image) -> FloatImage:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High bit depth: stretch the stored range (no VOI window is known for a bare PNG).
        arr = np.asarray(img, dtype=np.float32)
        low, high = float(arr.min()), float(arr.max())
        return np.zeros_like(arr) if high <= low else (arr - low) / (high - low)
    if img.mode == "CMYK":
        img = img.convert("RGB")
    gray = img.convert("L")
    return np.asarray(gray, dtype=np.float32) / 255.0


def center_square(arr: FloatImage) -> FloatImage:
    height, width = arr.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return arr[top : top + side, left : left + side]


def resize(arr: FloatImage, size: int) -> FloatImage:
    """Area-like downscaling (BOX) and bilinear upscaling, on float data so no precision is lost."""
    if arr.shape == (size, size):
        return arr
    method = Image.Resampling.BOX if arr.shape[0] >= size else Image.Resampling.BILINEAR
    out = Image.fromarray(arr.astype(np.float32), mode="F").resize((size, size), method)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def preprocess(data: bytes, *, size: int, mean: float, std: float, max_pixels: int) -> FloatImage:
    """Bytes → normalised (size, size) float32, exactly the path training data took after `decode`."""
    arr = resize(center_square(decode_grayscale(data, max_pixels=max_pixels)), size)
    return (arr - mean) / std
