"""DICOM input: pydicom's bundled test files and radiographs built here, through the API (and, once, the worker)."""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from numpy.typing import NDArray
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid
from sqlmodel import Session, select

from api.dicom import dicom_to_png
from shared.errors import ValidationFailed
from shared.models import Job
from shared.modelspec import DicomPolicy, ModelSpec, Window, discover
from shared.settings import PROJECT_ROOT
from tests.images import b64

SOP_CLASSES = {"DX": "1.2.840.10008.5.1.4.1.1.1.1", "CR": "1.2.840.10008.5.1.4.1.1.1",
               "OT": "1.2.840.10008.5.1.4.1.1.7"}
FIELD = "input.image_b64"


def chest_like(size: int = 192, seed: int = 0) -> NDArray[np.uint16]:
    """A frontal chest radiograph's layout in 12 bits (MONOCHROME2, dense = bright): a bright body, two dark lung
    fields, a bright spine and heart, noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.full((size, size), 300.0)
    image[((x - 0.5) / 0.45) ** 2 + ((y - 0.55) / 0.5) ** 2 < 1] = 2600
    for cx in (0.32, 0.68):
        image[((x - cx) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1] = 900
    image[np.abs(x - 0.5) < 0.05] = 3400
    image[((x - 0.56) / 0.12) ** 2 + ((y - 0.65) / 0.1) ** 2 < 1] = 3000
    image += np.random.default_rng(seed).normal(0, 60, image.shape)
    clipped: NDArray[np.uint16] = np.clip(image, 0, 4095).astype(np.uint16)
    return clipped


def radiograph(pixels: NDArray[Any] | None = None, *, modality: str = "DX", **tags: Any) -> Dataset:
    """A minimal, valid single-frame grayscale DICOM image with patient data in it (that must not be kept)."""
    pixels = chest_like() if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(SOP_CLASSES.get(modality, SOP_CLASSES["OT"]))
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "MRN-555", "19800101"
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for name, value in tags.items():
        setattr(ds, name, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def bundled(name: str, **changes: Any) -> bytes:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is bundled with pydicom"
    if not changes:
        with open(path, "rb") as fh:
            return fh.read()
    ds = pydicom.dcmread(path)
    for tag, value in changes.items():
        setattr(ds, tag, value)
    return to_bytes(ds)


def _post(client: FlaskClient, auth: dict[str, str], data: bytes, model: str = "pneumonia-xray") -> Any:
    body = {"model": model, "input": {"image_b64": b64(data), "media_type": "application/dicom"}}
    return client.post("/v1/jobs", json=body, headers=auth)


def _refused(response: Any, *words: str) -> str:
    assert response.status_code == 422, response.get_data(as_text=True)
    problem = response.get_json()
    assert problem["errors"][0]["field"] == FIELD
    for word in words:
        assert word in problem["detail"], problem
    detail: str = problem["detail"]
    return detail


def _row(app: Flask, job_id: str) -> Job:
    with Session(app.extensions["medq"].engine) as s:
        job = s.get(Job, job_id)
    assert job is not None
    return job


def _gray(png: bytes) -> NDArray[np.int16]:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG" and img.mode == "L"
        return np.asarray(img).astype(np.int16)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return discover(PROJECT_ROOT / "models")["pneumonia-xray"]


@pytest.mark.parametrize("name,modality", [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")])
def test_ct_and_mr_are_refused_naming_the_modality(client: FlaskClient, auth: dict[str, str], app: Flask,
                                                   name: str, modality: str) -> None:
    _refused(_post(client, auth, bundled(name)), f"modality {modality}", "CR, DX, OT")
    with Session(app.extensions["medq"].engine) as s:
        assert not s.exec(select(Job)).all()


def test_a_dx_radiograph_becomes_a_png_and_only_its_uids_are_kept(client: FlaskClient, auth: dict[str, str],
                                                                  app: Flask) -> None:
    ds = radiograph(WindowCenter=2000, WindowWidth=3000)
    response = _post(client, auth, to_bytes(ds))
    assert response.status_code == 202, response.get_json()
    row = _row(app, response.get_json()["id"])
    assert row.input_media_type == "image/png" and row.input_data is not None
    assert _gray(row.input_data).shape == (192, 192)
    assert row.input_refs == {"StudyInstanceUID": ds.StudyInstanceUID, "SeriesInstanceUID": ds.SeriesInstanceUID,
                              "SOPInstanceUID": ds.SOPInstanceUID}
    stored = row.input_data + json.dumps([row.input_refs, row.subject, row.external_id]).encode()
    for phi in (b"Doe", b"MRN-555", b"19800101"):
        assert phi not in stored


def test_cr_monochrome1_is_inverted(spec: ModelSpec, client: FlaskClient, auth: dict[str, str]) -> None:
    cr = bundled("6278")  # a CR image, MONOCHROME1, with a window and rescale
    assert pydicom.dcmread(io.BytesIO(cr)).PhotometricInterpretation == "MONOCHROME1"
    inverted = _gray(dicom_to_png(cr, spec, field=FIELD, max_pixels=10**6).png)
    plain = _gray(dicom_to_png(bundled("6278", PhotometricInterpretation="MONOCHROME2"), spec, field=FIELD,
                               max_pixels=10**6).png)
    assert inverted.std() > 0
    assert np.abs(inverted + plain - 255).max() <= 1
    assert _post(client, auth, cr).status_code == 202


def test_jpeg_baseline_secondary_capture_decodes(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    data = bundled("SC_rgb_jpeg_dcmtk.dcm")  # OT, YBR_FULL, JPEG baseline: Pillow decodes it
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    response = _post(client, auth, data)
    assert response.status_code == 202, response.get_json()
    row = _row(app, response.get_json()["id"])
    assert row.input_data is not None and _gray(row.input_data).shape == (100, 100)


@pytest.mark.parametrize("name,syntax", [
    ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80 (JPEG-LS Lossless Image Compression)"),  # no decoder
    ("JPEG-lossy.dcm", "1.2.840.10008.1.2.4.51 JPEG Extended (Process 2 and 4)"),  # a decoder, but not 12-bit
])
def test_undecodable_compression_is_422_naming_the_transfer_syntax(client: FlaskClient, auth: dict[str, str],
                                                                   name: str, syntax: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about these files' odd headers
        data = bundled(name, Modality="DX")
    _refused(_post(client, auth, data), syntax)


@pytest.mark.parametrize("data", [
    bundled("SC_rgb_rle_2frame.dcm"),  # a secondary capture (OT) with 2 frames
    to_bytes(radiograph(np.concatenate([chest_like(), chest_like(seed=1)]), NumberOfFrames=2, Rows=192)),
])
def test_multi_frame_files_are_refused(client: FlaskClient, auth: dict[str, str], data: bytes) -> None:
    _refused(_post(client, auth, data), "multi-frame", "2 frames")


def _encapsulated_garbage() -> bytes:
    ds = radiograph()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([b"\xff\xd8 this is not a JPEG stream \xff\xd9"])
    ds["PixelData"].VR = "OB"
    return to_bytes(ds)


def _without(name: str) -> bytes:
    ds = radiograph()
    delattr(ds, name)
    return to_bytes(ds)


@pytest.mark.parametrize("data,reason", [
    (b"hello, I am not DICOM" * 20, "not a readable DICOM"),
    (to_bytes(radiograph(PixelData=b"\x00\x01" * 100)), "pixel data cannot be decoded"),
    (_encapsulated_garbage(), "pixel data cannot be decoded (1.2.840.10008.1.2.4.50"),
    (_without("Rows"), "Rows (0028,0010)"),
    (_without("PixelData"), "PixelData (7FE0,0010)"),
    (_without("Modality"), "no Modality"),
])
def test_garbage_and_missing_tags_are_422_with_the_reason(client: FlaskClient, auth: dict[str, str],
                                                          data: bytes, reason: str) -> None:
    _refused(_post(client, auth, data), reason)


def test_the_pixel_limit_applies(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    app.extensions["medq"].settings.max_image_pixels = 100 * 100
    _refused(_post(client, auth, to_bytes(radiograph())), "192x192", "10000 pixels")


def test_the_models_default_window_applies_only_when_the_file_has_none(spec: ModelSpec) -> None:
    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (8, 1))  # 0..4080 left to right
    windowed = spec.model_copy(update={"dicom": DicomPolicy(modalities=["DX"],
                                                            default_window=Window(center=1000, width=200))})
    bare = to_bytes(radiograph(ramp))
    gray = _gray(dicom_to_png(bare, windowed, field=FIELD, max_pixels=10**6).png)[0]
    assert gray[ramp[0] < 880].max() == 0 and gray[ramp[0] > 1120].min() == 255
    stretched = _gray(dicom_to_png(bare, spec, field=FIELD, max_pixels=10**6).png)[0]  # "minmax"
    assert stretched[0] == 0 and stretched[-1] == 255 and 100 < stretched[len(stretched) // 2] < 155
    own = to_bytes(radiograph(ramp, WindowCenter=3000, WindowWidth=400))
    gray = _gray(dicom_to_png(own, windowed, field=FIELD, max_pixels=10**6).png)[0]
    assert gray[ramp[0] < 2780].max() == 0 and gray[ramp[0] > 3220].min() == 255


def test_a_model_without_a_dicom_policy_refuses_dicom(spec: ModelSpec) -> None:
    with pytest.raises(ValidationFailed, match="does not accept DICOM"):
        dicom_to_png(to_bytes(radiograph()), spec.model_copy(update={"dicom": None}), field=FIELD, max_pixels=10**6)


def test_dicom_as_a_multipart_upload(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/jobs", headers=auth, content_type="multipart/form-data", data={
        "model": "pneumonia-xray", "media_type": "application/dicom",
        "file": (io.BytesIO(to_bytes(radiograph(modality="CR"))), "chest.dcm", "application/dicom"),
    })
    assert response.status_code == 202, response.get_json()


def test_a_secondary_capture_radiograph_is_classified_end_to_end(client: FlaskClient, auth: dict[str, str],
                                                                 app: Flask) -> None:
    """API → the worker's service with the real model (no Celery) → the job and its FHIR result."""
    from worker.engine import InferenceEngine
    from worker.registry import Registry
    from worker.service import Runtime, process_jobs

    st = app.extensions["medq"]
    ds = radiograph(modality="OT")
    job_id = _post(client, auth, to_bytes(ds)).get_json()["id"]
    inference = InferenceEngine(Registry(st.settings), st.settings)
    try:
        process_jobs([job_id], runtime=Runtime(settings=st.settings, engine=st.engine, inference=inference),
                     final_attempt=True)
    finally:
        inference.close()
    job = client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()
    assert job["status"] == "succeeded", job
    assert {s["label"] for s in job["result"]["scores"]} == {"normal", "pneumonia"}
    bundle = client.get(f"/v1/jobs/{job_id}/fhir", headers=auth).get_json(force=True)
    risk = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RiskAssessment")
    assert risk["basis"][0]["identifier"]["value"] == f"urn:oid:{ds.StudyInstanceUID}"
