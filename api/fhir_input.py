"""FHIR R4 input for `POST /v1/jobs` (`Content-Type: application/fhir+json`): a `DocumentReference`, or a `Bundle`
holding one plus (optionally) its `Patient`. It becomes the ordinary JSON request: the attachment is the input
(`text/plain` → text; `image/png`, `image/jpeg`, `application/dicom` → an image), the DocumentReference's first
identifier value is the `external_id`, and the patient reference becomes `subject` (later the RiskAssessment's
subject). Only the patient's reference and first identifier are kept — never names or other demographics.
Every error is a 422 whose `errors[].field` is the FHIR path (`Bundle.entry[1].resource.content[0].attachment`)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.patient import Patient
from pydantic import TypeAdapter, ValidationError

from shared.errors import FieldError, ValidationFailed
from shared.schemas import ExternalId

TEXT_TYPES = {"text/plain"}
IMAGE_TYPES = {"image/png", "image/jpeg", "application/dicom"}
_EXTERNAL_ID: TypeAdapter[str] = TypeAdapter(ExternalId)


@dataclass(frozen=True)
class FhirInput:
    input: dict[str, str]  # {"text"} or {"image_b64", "media_type"}
    external_id: str | None
    subject: dict[str, Any] | None  # a FHIR Reference to the patient


def parse_fhir(data: Any) -> FhirInput:
    """A DocumentReference or a Bundle holding one → the job's input, external id and patient reference."""
    if not isinstance(data, dict):
        raise _invalid("", "expected a FHIR resource (a JSON object with resourceType)")
    kind = data.get("resourceType")
    if kind == "DocumentReference":
        return _from_document(data, "DocumentReference", patient=None)
    if kind == "Bundle":
        return _from_bundle(data)
    raise _invalid("resourceType", f"resourceType {kind!r} is not accepted; send a DocumentReference or a Bundle "
                                   "holding one")


def _from_bundle(bundle: dict[str, Any]) -> FhirInput:
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise _invalid("Bundle.entry", "the Bundle has no entries")
    documents: list[tuple[str, dict[str, Any]]] = []
    patients: dict[str, dict[str, Any]] = {}  # by fullUrl and "Patient/<id>", to resolve the document's subject
    first_patient: dict[str, Any] | None = None
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        kind = resource.get("resourceType")
        if kind == "DocumentReference":
            documents.append((f"Bundle.entry[{i}].resource", resource))
        elif kind == "Patient":
            _validate(Patient, resource, f"Bundle.entry[{i}].resource")
            first_patient = first_patient or resource
            for key in (entry.get("fullUrl"), f"Patient/{resource.get('id')}" if resource.get("id") else None):
                if key:
                    patients[str(key)] = resource
    if len(documents) != 1:
        raise _invalid("Bundle.entry", f"the Bundle holds {len(documents)} DocumentReference resources; "
                                       "exactly one is needed")
    path, document = documents[0]
    subject = document.get("subject")
    referenced = patients.get(subject.get("reference", "")) if isinstance(subject, dict) else None
    return _from_document(document, path, patient=referenced or first_patient)


def _from_document(document: dict[str, Any], path: str, *, patient: dict[str, Any] | None) -> FhirInput:
    job_input = _attachment_input(document, path)
    _validate(DocumentReference, document, path)
    subject = _patient_reference(patient) if patient is not None else _copy_reference(document.get("subject"))
    return FhirInput(input=job_input, external_id=_external_id(document, path), subject=subject)


def _external_id(document: dict[str, Any], path: str) -> str | None:
    identifiers = document.get("identifier")
    first = identifiers[0] if isinstance(identifiers, list) and identifiers else None
    value = first.get("value") if isinstance(first, dict) else None
    if value is None:
        return None
    try:
        return _EXTERNAL_ID.validate_python(value)
    except ValidationError as exc:
        raise _invalid(f"{path}.identifier[0].value", "an identifier usable as external_id has 1-128 printable "
                                                      "characters") from exc


def _attachment_input(document: dict[str, Any], path: str) -> dict[str, str]:
    content = document.get("content")
    first = content[0] if isinstance(content, list) and content else None
    attachment = first.get("attachment") if isinstance(first, dict) else None
    where = f"{path}.content[0].attachment"
    if not isinstance(attachment, dict):
        raise _invalid(where, "missing: the DocumentReference needs content[0].attachment with the input")
    content_type = str(attachment.get("contentType") or "")
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type not in TEXT_TYPES | IMAGE_TYPES:
        accepted = ", ".join(sorted(TEXT_TYPES | IMAGE_TYPES))
        raise _invalid(f"{where}.contentType", f"contentType {content_type or '(none)'!r} is not accepted; "
                                               f"use {accepted}")
    raw = attachment.get("data")
    if not isinstance(raw, str) or not raw.strip():
        raise _invalid(f"{where}.data", "missing: the input must be inline base64 data (url is not fetched)")
    compact = "".join(raw.split())  # base64Binary may be wrapped over lines
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"{where}.data", f"not valid base64: {exc}") from exc
    if media_type in IMAGE_TYPES:
        return {"image_b64": compact, "media_type": media_type}
    charset = _charset(params)
    try:
        return {"text": data.decode(charset)}
    except (UnicodeDecodeError, LookupError) as exc:
        raise _invalid(f"{where}.data", f"not text in charset {charset}: {exc}") from exc


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _patient_reference(patient: dict[str, Any]) -> dict[str, Any] | None:
    """`Patient/<id>` and the first identifier (system and value only): enough to find the patient, no more."""
    reference: dict[str, Any] = {"type": "Patient"}
    if patient.get("id"):
        reference["reference"] = f"Patient/{patient['id']}"
    identifiers = patient.get("identifier") or []
    if identifiers and isinstance(identifiers[0], dict) and identifiers[0].get("value"):
        reference["identifier"] = {k: identifiers[0][k] for k in ("system", "value") if identifiers[0].get(k)}
    return reference if len(reference) > 1 else None


def _copy_reference(subject: Any) -> dict[str, Any] | None:
    """The DocumentReference's own subject, without `display` (often the patient's name)."""
    if not isinstance(subject, dict):
        return None
    kept = {k: subject[k] for k in ("reference", "type", "identifier") if subject.get(k)}
    if str(kept.get("reference", "")).startswith(("urn:uuid:", "#")):
        kept.pop("reference")  # points into a bundle or resource we do not keep
    return kept if kept.keys() - {"type"} else None


def _validate(model: type[DocumentReference] | type[Patient], resource: dict[str, Any], path: str) -> None:
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = [FieldError(_fhir_path(path, err["loc"]), err["msg"]) for err in exc.errors()]
        raise ValidationFailed(f"{path} is not a valid FHIR R4 {model.__name__}", errors=errors) from exc


def _fhir_path(path: str, loc: tuple[int | str, ...]) -> str:
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[FieldError(field, message)])
