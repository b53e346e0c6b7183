"""Turning a request body into validated jobs: JSON, multipart or FHIR (`application/fhir+json`, see
`api.fhir_input`) in, `NewJob`s out. Images are checked here (decodable, within the pixel limit) with Pillow, and
DICOM is converted to PNG (`api.dicom`), so bad input is a 422 and never reaches a worker."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

from fhir.resources.R4B.reference import Reference
from flask import Request
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from api.dicom import dicom_to_png
from api.fhir_input import parse_fhir
from api.tokens import count_tokens
from shared.crud import NewJob
from shared.errors import BadRequest, FieldError, UnsupportedMediaType, ValidationFailed
from shared.modelspec import ModelSpec
from shared.schemas import ImageInput, JobInput, TextInput
from shared.settings import Settings

PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
FORM_FIELDS = ("model", "external_id", "priority", "max_queue_seconds", "explain", "webhook")
FHIR_JSON = "application/fhir+json"
# FHIR's own query parameters, accepted (and ignored) on a FHIR submission beside the job's fields.
FHIR_QUERY_PARAMS = {"_format", "_pretty"}


def read_body(request: Request) -> dict[str, Any]:
    """The request as a dict: parsed JSON, or multipart form fields plus the `file` part as an image input."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        data = request.get_json(silent=True)
        if data is None:
            raise BadRequest("the body is not valid JSON")
        if not isinstance(data, dict):
            raise ValidationFailed("the body must be a JSON object", errors=[FieldError("", "expected an object")])
        return data
    if mimetype == "multipart/form-data":
        return _read_multipart(request)
    if mimetype == FHIR_JSON:
        return _read_fhir(request)
    raise UnsupportedMediaType(f"Content-Type {mimetype or '(none)'} is not supported; "
                               f"send application/json, multipart/form-data or {FHIR_JSON}")


def _read_fhir(request: Request) -> dict[str, Any]:
    """A FHIR DocumentReference (or Bundle holding one) as the body; the job's other fields as query parameters
    (`?model=disease-category&priority=stat`). The DocumentReference's identifier wins over `external_id`."""
    data = request.get_json(force=True, silent=True)
    if data is None:
        raise BadRequest("the body is not valid JSON")
    unknown = sorted(set(request.args) - set(FORM_FIELDS) - FHIR_QUERY_PARAMS)
    if unknown:
        raise ValidationFailed(f"unknown query parameter(s): {', '.join(unknown)}",
                               errors=[FieldError(name, "unknown query parameter") for name in unknown])
    body = _fields(request.args)
    fhir = parse_fhir(data)
    body["input"] = fhir.input
    if fhir.external_id is not None:
        body["external_id"] = fhir.external_id
    if fhir.subject is not None:
        body["subject"] = fhir.subject
    return body


def _read_multipart(request: Request) -> dict[str, Any]:
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed("multipart requests need a 'file' part", errors=[FieldError("file", "missing")])
    body = _fields(request.form)
    media_type = request.form.get("media_type") or upload.mimetype or ""
    body["input"] = {"image_b64": base64.b64encode(upload.read()).decode(), "media_type": media_type}
    return body


def _fields(source: MultiDict[str, str]) -> dict[str, Any]:
    """The job's fields from form fields or query parameters, which carry only strings."""
    body: dict[str, Any] = {k: source[k] for k in FORM_FIELDS if k in source}
    if "explain" in body:
        body["explain"] = body["explain"].lower() in {"1", "true", "yes", "on"}
    if "webhook" in body:
        try:
            body["webhook"] = json.loads(body["webhook"])
        except json.JSONDecodeError as exc:
            raise ValidationFailed("webhook must be JSON", errors=[FieldError("webhook", str(exc))]) from exc
    return body


def to_new_job(spec: ModelSpec, job_input: JobInput, external_id: str | None, *, field: str,
               settings: Settings, subject: dict[str, Any] | None = None) -> NewJob:
    """Check that the input suits the model and the limits; `field` names it in errors (`input`, `items[3].input`).
    DICOM becomes an 8-bit PNG plus the UIDs that reference it; `subject` (a FHIR Reference) is checked."""
    subject = _check_subject(subject)
    if spec.input_kind == "text":
        if not isinstance(job_input, TextInput):
            raise _invalid(field, f"model {spec.name} classifies text: send {{\"text\": \"...\"}}")
        return NewJob(input_kind="text", input_data=_check_text(job_input.text, field, settings, spec),
                      external_id=external_id, subject=subject)
    if not isinstance(job_input, ImageInput):
        raise _invalid(field, f"model {spec.name} classifies images: send image_b64 and media_type")
    data = _decode_b64(job_input.image_b64, f"{field}.image_b64")
    if len(data) > settings.max_image_bytes:
        raise _invalid(f"{field}.image_b64", f"the image has {len(data)} bytes; the limit is "
                                             f"{settings.max_image_bytes}")
    if job_input.media_type == "application/dicom":
        converted = dicom_to_png(data, spec, field=f"{field}.image_b64", max_pixels=settings.max_image_pixels)
        return NewJob(input_kind="image", input_data=converted.png, input_media_type="image/png",
                      external_id=external_id, subject=subject, input_refs=converted.refs or None)
    _check_image(data, job_input.media_type, f"{field}.image_b64", settings)
    return NewJob(input_kind="image", input_data=data, input_media_type=job_input.media_type,
                  external_id=external_id, subject=subject)


def _check_subject(subject: dict[str, Any] | None) -> dict[str, Any] | None:
    if subject is None:
        return None
    try:
        reference = Reference.model_validate(subject)
    except ValidationError as exc:
        raise _invalid("subject", f"not a FHIR Reference: {exc.errors()[0]['msg']}") from exc
    checked: dict[str, Any] = json.loads(reference.model_dump_json())
    if not checked:
        raise _invalid("subject", "an empty Reference names no patient")
    return checked


def _check_text(text: str, field: str, settings: Settings, spec: ModelSpec) -> bytes:
    if not text.strip():
        raise _invalid(f"{field}.text", "the text is empty")
    if len(text) > settings.max_text_chars:
        raise _invalid(f"{field}.text", f"the text has {len(text)} characters; the limit is "
                                        f"{settings.max_text_chars}")
    tokens = count_tokens(spec, text)
    if tokens is not None and tokens > settings.max_text_tokens:
        raise _invalid(f"{field}.text", f"the text has {tokens} tokens; the limit is {settings.max_text_tokens}")
    return text.encode("utf-8")


def _decode_b64(value: str, field: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(field, f"not valid base64: {exc}") from exc
    if not data:
        raise _invalid(field, "the image is empty")
    return data


def _check_image(data: bytes, media_type: str, field: str, settings: Settings) -> None:
    expected = PILLOW_FORMATS[media_type]
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            found = img.format
            if width * height > settings.max_image_pixels:
                raise _invalid(field, f"the image has {width}x{height} pixels; the limit is "
                                      f"{settings.max_image_pixels} pixels")
            img.verify()
    except UnidentifiedImageError as exc:  # its message names an internal buffer object: say it plainly
        raise _invalid(field, f"not a readable {media_type} image: the bytes are not a known image format") from exc
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _invalid(field, f"not a readable {media_type} image: {exc}") from exc
    if found != expected:
        raise _invalid(field, f"media_type says {media_type} but the bytes are {found or 'unknown'}")


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[FieldError(field, message)])
