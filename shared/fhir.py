"""A job's result as FHIR R4: a `Bundle` (type `collection`) holding the `RiskAssessment`, the `Provenance` that
says which model produced it, and that model as a `Device`. Built as plain dicts, then validated (and
normalised) by the `fhir.resources` R4B models, so what leaves here is valid R4 and round-trips through them.
No Flask here: the API's `/v1/jobs/{id}/fhir` and webhook bodies both use `risk_assessment_bundle`.

Entries reference each other by `urn:uuid:` full URLs, as a collection bundle does: the RiskAssessment's is the
job id, the Device's is derived from the model's name, version and weights digest (the same Device for every
job of that model), the Provenance's from the job id."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from shared.errors import Gone, InvalidTransition
from shared.models import Job
from shared.modelspec import ModelSpec
from shared.status import JobStatus

AI_ASSERTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "AIAST",
               "display": "Artificial Intelligence asserted"}
EXTERNAL_ID_SYSTEM = "urn:medq:external-id"
MODEL_SYSTEM = "urn:medq:model"
MODEL_DIGEST_SYSTEM = "urn:medq:model-sha256"
DICOM_UID_SYSTEM = "urn:dicom:uid"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_NAMESPACE = uuid.UUID("6f1d8f3e-4c1b-5a7e-9a43-2f3b8f0c9d11")  # fixed: derived ids stay stable across releases


class FhirBuildError(RuntimeError):
    """Our own output failed R4 validation: a bug here, never the client's fault (so not a 422)."""


def risk_assessment_bundle(job: Job, spec: ModelSpec | None, *, base_url: str) -> dict[str, Any]:
    """The job's result as a FHIR R4 collection Bundle (JSON-ready dict). `spec` supplies terminology codes for
    the labels (None: labels as text only); `base_url` (no trailing slash) names this service in identifiers.
    Raises Gone after the job's data was erased and InvalidTransition while it has no result."""
    result = _result_of(job)
    base_url = base_url.rstrip("/")
    model, version, digest = result["model"], result["model_version"], result["model_sha256"]
    device_url = _urn(f"device:{model}:{version}:{digest}")
    ra_url, provenance_url = f"urn:uuid:{job.id}", _urn(f"provenance:{job.id}")
    basis = _basis(job, base_url)
    entries = [
        (ra_url, _risk_assessment(job, result, spec, basis=basis, device_url=device_url, base_url=base_url)),
        (provenance_url, _provenance(job, target=ra_url, device_url=device_url, source=basis[0])),
        (device_url, _device(model, version, digest)),
    ]
    bundle = {
        "resourceType": "Bundle", "id": job.id, "type": "collection", "timestamp": _instant(job),
        "link": [{"relation": "self", "url": f"{base_url}/v1/jobs/{job.id}/fhir"}],
        "entry": [{"fullUrl": url, "resource": {"id": url.removeprefix("urn:uuid:"), **resource}}
                  for url, resource in entries],
    }
    try:
        validated = Bundle.model_validate(bundle)
    except ValidationError as exc:
        raise FhirBuildError(f"the FHIR bundle for job {job.id} is not valid R4: {exc}") from exc
    out: dict[str, Any] = json.loads(validated.model_dump_json())
    return out


def subject_of(job: Job) -> dict[str, Any]:
    """The patient from a FHIR input, else a logical reference by the hospital's external id (or the job id)."""
    if job.subject:
        return dict(job.subject)
    return {"identifier": {"system": EXTERNAL_ID_SYSTEM, "value": job.external_id or job.id}}


def _result_of(job: Job) -> dict[str, Any]:
    if job.data_removed:
        raise Gone(f"the data of job {job.id} was removed")
    status = JobStatus(job.status)
    if not status.is_terminal:
        raise InvalidTransition(f"job {job.id} is {status}; its FHIR result exists once it has succeeded")
    if not job.result:
        raise InvalidTransition(f"job {job.id} is {status} and has no result to express in FHIR")
    return job.result


def _risk_assessment(job: Job, result: dict[str, Any], spec: ModelSpec | None, *, basis: list[dict[str, Any]],
                     device_url: str, base_url: str) -> dict[str, Any]:
    model, version = result["model"], result["model_version"]
    notes = ["Decision support only: a clinician must review this result."]
    if result.get("indeterminate"):
        notes.append("Indeterminate: the top probability falls in the model's abstain band.")
    return {
        "resourceType": "RiskAssessment",
        "meta": {"security": [AI_ASSERTED]},
        "identifier": [{"system": f"{base_url}/v1/jobs", "value": job.id}],
        "status": "preliminary",
        "method": {"coding": [{"system": MODEL_SYSTEM, "code": model, "version": version,
                               "display": f"{model} {version}"}], "text": f"{model} {version}"},
        "subject": subject_of(job),
        "occurrenceDateTime": _instant(job),
        "performer": {"reference": device_url, "display": f"{model} {version}"},
        "basis": basis,
        "prediction": [_prediction(score["label"], score["probability"], spec) for score in result["scores"]],
        "note": [{"text": text} for text in notes],
    }


def _prediction(label: str, probability: float, spec: ModelSpec | None) -> dict[str, Any]:
    outcome: dict[str, Any] = {"text": label}
    codings = spec.codings(label) if spec is not None else []
    if codings:  # FHIR forbids empty arrays, so no `coding` at all when no code is known
        outcome["coding"] = [c.model_dump(exclude_none=True) for c in codings]
    return {"outcome": outcome, "probabilityDecimal": probability}


def _basis(job: Job, base_url: str) -> list[dict[str, Any]]:
    """What the assessment was based on: the DICOM study, else the input by the hospital's reference or the job."""
    refs = job.input_refs or {}
    study = refs.get("StudyInstanceUID")
    if study:
        series, instance = refs.get("SeriesInstanceUID", "?"), refs.get("SOPInstanceUID", "?")
        return [{"type": "ImagingStudy", "identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study}"},
                 "display": f"series {series}, instance {instance}"}]
    kind = "clinical text" if job.input_kind == "text" else "image"
    display = f"the {kind} submitted with job {job.id}"
    if job.external_id:  # the hospital's own reference (from a FHIR input: the DocumentReference's identifier)
        return [{"identifier": {"system": EXTERNAL_ID_SYSTEM, "value": job.external_id}, "display": display}]
    return [{"identifier": {"system": f"{base_url}/v1/jobs", "value": job.id}, "display": display}]


def _provenance(job: Job, *, target: str, device_url: str, source: dict[str, Any]) -> dict[str, Any]:
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": _instant(job),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE", "display": "create"}]},
        "agent": [{"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]},
                   "who": {"reference": device_url}}],
        "entity": [{"role": "source", "what": source}],
    }
    if job.started_at is not None:
        provenance["occurredPeriod"] = {"start": job.started_at.isoformat(), "end": _instant(job)}
    return provenance


def _device(model: str, version: str, digest: str) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "identifier": [{"system": MODEL_DIGEST_SYSTEM, "value": digest}],
        "deviceName": [{"name": model, "type": "model-name"}],
        "modelNumber": model,
        "type": {"text": "machine-learning classification model (decision support)"},
        "version": [{"type": {"text": "model version"}, "value": version},
                    {"type": {"text": "weights sha256"}, "value": digest}],
    }


def _instant(job: Job) -> str:
    when = job.finished_at or job.created_at
    return when.isoformat()


def _urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"
