"""Fuzzed images and DICOM files through the real API and a real worker (the pneumonia-xray CNN): each ends in a
4xx at submission or a job that finished (succeeded, or failed with an error) — never a 5xx, a crashed worker or
a job stuck in the queue."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from sqlalchemy import create_engine

from shared.localstack import LocalStack, local_stack
from shared.settings import PROJECT_ROOT
from tests.api.test_dicom import radiograph, to_bytes
from tests.images import b64, png_bytes
from tests.reliability.conftest import wait_until
from tests.reliability.test_worker_crash import ENV, record

pytestmark = [pytest.mark.integration, pytest.mark.fault]

MODEL = "pneumonia-xray"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (zlib-bomb-like) data stream."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 65536, 9)) + _png_chunk(b"IEND", b""))


def pil(mode: str, fmt: str, size: tuple[int, int] = (64, 64), **save: Any) -> bytes:
    buf = io.BytesIO()
    image = Image.new(mode, size, 7 if mode in ("L", "P", "I;16", "I") else (10, 20, 30, 40)[:len(mode)])
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


def dicom_variant(change: str) -> bytes:
    ds: Dataset = radiograph(np.zeros((64, 64), dtype=np.uint16))
    if change == "garbage_pixels":
        ds.PixelData = b"\xff\x00garbage" * 7
    elif change == "missing_rows":
        del ds.Rows
    elif change == "missing_pixels":
        del ds.PixelData
    elif change == "wrong_vr":
        ds.add_new(0x00280010, "LO", "sixty-four")  # Rows as text
    return to_bytes(ds)


def cases() -> dict[str, tuple[bytes, str]]:
    good = png_bytes((64, 64))
    return {
        "truncated_png": (good[: len(good) // 2], "image/png"),
        "png_header_only": (good[:16], "image/png"),
        "wrong_magic": (b"GIF89a" + good[6:], "image/png"),
        "jpeg_labelled_png": (pil("RGB", "JPEG"), "image/png"),
        "bomb_100000x100000": (png_declaring(100_000, 100_000), "image/png"),
        "huge_1x40000000": (png_declaring(1, 40_000_000), "image/png"),
        "png_16bit": (pil("I;16", "PNG"), "image/png"),
        "png_palette": (pil("P", "PNG"), "image/png"),
        "png_alpha": (pil("RGBA", "PNG"), "image/png"),
        "png_la": (pil("LA", "PNG"), "image/png"),
        "jpeg_cmyk": (pil("CMYK", "JPEG"), "image/jpeg"),
        "jpeg_1x1": (pil("L", "JPEG", (1, 1)), "image/jpeg"),
        "random_bytes": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "image/jpeg"),
        "dicom_garbage_pixels": (dicom_variant("garbage_pixels"), "application/dicom"),
        "dicom_missing_rows": (dicom_variant("missing_rows"), "application/dicom"),
        "dicom_missing_pixels": (dicom_variant("missing_pixels"), "application/dicom"),
        "dicom_not_dicom": (b"DICM" * 100, "application/dicom"),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("bad-files")
    shutil.copytree(PROJECT_ROOT / "models" / MODEL, root / "models" / MODEL)  # the CNN alone: a quick start
    with local_stack(root, env={**ENV, "MEDQ_MODEL_DIR": str(root / "models")}) as running:
        yield running


def test_fuzzed_images_end_in_a_4xx_or_a_finished_job(stack: LocalStack) -> None:
    accepted: dict[str, str] = {}
    refused: dict[str, int] = {}
    with stack.client(timeout=120) as client:
        for name, (data, media_type) in cases().items():
            body = {"model": MODEL, "input": {"image_b64": b64(data), "media_type": media_type}}
            response = client.post("/v1/jobs", json=body)
            assert response.status_code < 500, (name, response.text)
            if response.status_code == 202:
                accepted[name] = response.json()["id"]
            else:
                refused[name] = response.status_code
            multipart = client.post("/v1/jobs", data={"model": MODEL},
                                    files={"file": (f"{name}.bin", data, media_type)})
            assert multipart.status_code < 500, (name, multipart.text)
    engine = create_engine(stack.env["MEDQ_DATABASE_URL"])
    jobs = wait_until(engine, list(accepted.values()), timeout=120, stack=stack)
    outcomes = {name: jobs[job_id].status for name, job_id in accepted.items()}
    for name, job_id in accepted.items():
        job = jobs[job_id]
        assert job.status == "succeeded" or (job.status == "failed" and job.error), (name, job.error)
    assert stack.processes["worker"].poll() is None, "a fuzzed file crashed the worker"
    assert refused["bomb_100000x100000"] == 422 and refused["truncated_png"] == 422
    record("bad_files", {"cases": len(cases()), "refused": refused, "accepted": outcomes})


def test_dicom_with_a_wrong_vr_is_a_4xx(stack: LocalStack) -> None:
    body = {"model": MODEL, "input": {"image_b64": b64(dicom_variant("wrong_vr")), "media_type": "application/dicom"}}
    with stack.client(timeout=120) as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code < 500, response.text
