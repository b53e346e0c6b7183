"""Small images made in memory for tests."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def png_bytes(size: tuple[int, int] = (28, 28), mode: str = "L", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"L": None, "RGB": 3, "RGBA": 4}[mode]
    shape = (size[1], size[0]) if channels is None else (size[1], size[0], channels)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buf, format="JPEG")
    return buf.getvalue()


def png16_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    arr = (np.arange(size[0] * size[1], dtype=np.uint16).reshape(size[1], size[0]) * 50).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
