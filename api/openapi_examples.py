"""Examples for the OpenAPI document: the README's example job and its neighbours, realistic and valid against the
models they illustrate (tests/api/test_openapi.py validates each with its pydantic model)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.fhir import risk_assessment_bundle
from shared.models import Job
from shared.modelspec import ModelSpec

JOB_ID = "1816719f-5a8e-4c1d-9b2a-6f0e3d7c4b21"
SECOND_ID = "5b0e2c4d-7f3a-4e19-8c6b-2d9a1f0e7c35"
MODEL_SHA256 = "0ad74ed0bfae90c7b4f7ec78bfdab45591e46a97e9f1197c3c5ec6d347248c44"
TEXT = "Chest pain radiating to the left arm with ST elevation in II, III and aVF."
# An 8x8 grey PNG: small enough to read, real enough to decode.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAEElEQVR4nGNsYIAAJgaKGAAmCACQXTClHgAAAABJRU5ErkJggg=="

RESULT = {
    "label": "cardiovascular diseases",
    "scores": [{"label": "cardiovascular diseases", "probability": 0.655},
               {"label": "general pathological conditions", "probability": 0.226},
               {"label": "neoplasms", "probability": 0.061},
               {"label": "digestive system diseases", "probability": 0.034},
               {"label": "nervous system diseases", "probability": 0.024}],
    "explanation": None, "indeterminate": False,
    "model": "disease-category", "model_version": "1.0.0", "model_sha256": MODEL_SHA256,
}
CREATED, STARTED, FINISHED = "2026-11-22T22:12:30.768730Z", "2026-11-22T22:12:30.804900Z", "2026-11-22T22:12:30.853318Z"
JOB_SUCCEEDED: dict[str, Any] = {
    "id": JOB_ID, "status": "succeeded", "model": "disease-category", "model_version": "1.0.0",
    "external_id": "ACC-123", "priority": "routine", "created_at": CREATED, "started_at": STARTED,
    "finished_at": FINISHED,
    "queue_position": None, "estimated_start_at": None, "result": RESULT, "error": None, "data_removed": False,
}
JOB_QUEUED = {**JOB_SUCCEEDED, "status": "queued", "started_at": None, "finished_at": None, "queue_position": 0,
              "estimated_start_at": "2026-11-22T22:12:30.790000Z", "result": None}
JOB_CANCELED = {**JOB_QUEUED, "status": "canceled", "queue_position": None, "estimated_start_at": None,
                "finished_at": "2026-11-22T22:12:31.002417Z"}
JOB_ERASED = {**JOB_SUCCEEDED, "result": None, "data_removed": True}

WEBHOOK = {"url": "https://ehr.st-marys.example.org/medq/callbacks", "events": ["job.succeeded", "job.failed"]}
JOB_CREATE_TEXT = {"model": "disease-category", "input": {"text": TEXT}, "external_id": "ACC-123",
                   "priority": "routine"}
JOB_CREATE_IMAGE = {"model": "pneumonia-xray", "input": {"image_b64": PNG_B64, "media_type": "image/png"},
                    "external_id": "RAD-20261122-0042", "priority": "urgent", "webhook": WEBHOOK,
                    "max_queue_seconds": 600, "explain": True}
BATCH_CREATE = {"model": "disease-category", "priority": "urgent", "webhook": WEBHOOK, "items": [
    {"input": {"text": TEXT}, "external_id": "ACC-123"},
    {"input": {"text": "Progressive memory loss and gait apraxia; MRI shows ventriculomegaly."},
     "external_id": "ACC-124"},
]}
BATCH_OUT = {"jobs": [{**JOB_QUEUED, "priority": "urgent"},
                      {**JOB_QUEUED, "id": SECOND_ID, "external_id": "ACC-124", "priority": "urgent",
                       "queue_position": 1, "estimated_start_at": "2026-11-22T22:12:30.812000Z"}]}
# What `shared.crud.encode_cursor` makes of JOB_SUCCEEDED: its (created_at, id), base64url.
CURSOR = "MjAyNi0xMS0yMlQyMjoxMjozMC43Njg3MzArMDA6MDB8MTgxNjcxOWYtNWE4ZS00YzFkLTliMmEtNmYwZTNkN2M0YjIx"
JOB_LIST = {"jobs": [JOB_SUCCEEDED], "next_cursor": CURSOR}

MULTIPART = {"model": "pneumonia-xray", "priority": "urgent", "external_id": "RAD-20261122-0042",
             "explain": True, "file": "(the PNG, JPEG or DICOM file's bytes)"}
FHIR_INPUT = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"fullUrl": "urn:uuid:2d6f1a7e-0c1b-4d8e-9f3a-111111111111",
     "resource": {"resourceType": "Patient", "id": "123",
                  "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-555"}]}},
    {"fullUrl": "urn:uuid:2d6f1a7e-0c1b-4d8e-9f3a-222222222222",
     "resource": {"resourceType": "DocumentReference", "status": "current",
                  "identifier": [{"system": "urn:hospital:notes", "value": "NOTE-42"}],
                  "subject": {"reference": "urn:uuid:2d6f1a7e-0c1b-4d8e-9f3a-111111111111"},
                  "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                              "data": "Q2hlc3QgcGFpbiByYWRpYXRpbmcgdG8gdGhlIGxlZnQgYXJtLg=="}}]}},
]}

DELIVERIES = {"deliveries": [
    {"event": "job.succeeded", "webhook_id": "msg_9c1f4e2a7b3d4c5e8f6a0b1c2d3e4f50", "attempt": 1,
     "at": "2026-11-22T22:12:30.912000Z", "status_code": 503, "error": "HTTP 503", "duration_ms": 41.7},
    {"event": "job.succeeded", "webhook_id": "msg_9c1f4e2a7b3d4c5e8f6a0b1c2d3e4f50", "attempt": 2,
     "at": "2026-11-22T22:12:36.120000Z", "status_code": 200, "error": None, "duration_ms": 38.2},
]}
REDELIVERY = {"event": "job.succeeded", "webhook_id": "msg_9c1f4e2a7b3d4c5e8f6a0b1c2d3e4f50"}
SECRET = {"secret": "whsec_MZZ1Pg75auZ+S5AVCL7N1ePLKo6x6/WGuutEUxHuSpc=", "previous_valid_until": None}
ROTATED = {"secret": "whsec_kYOK/pJocwA+oXuvDcPHptGhuy1D7hSIOpP7QNj6+Fs=",
           "previous_valid_until": "2026-11-23T22:12:30.768730Z"}
ALLOWLIST_IN = {"entries": ["10.20.0.0/16", "ehr-gateway.st-marys.internal"]}
ALLOWLIST = {**ALLOWLIST_IN, "service_wide": ["192.168.50.0/24"]}

MODEL = {
    "name": "disease-category", "version": "1.0.0", "task": "text-classification",
    "labels": ["neoplasms", "digestive system diseases", "nervous system diseases", "cardiovascular diseases",
               "general pathological conditions"],
    "sha256": MODEL_SHA256, "limits": {"max_tokens": 256},
    "card": {"intended_use": "Decision support only: suggests the disease category of a clinical or biomedical "
                             "text for triage and routing. Not a diagnosis; a clinician must review every result.",
             "training_data": "Medical Abstracts text classification corpus (Schopf, Braun and Matthes, 2022), "
                              "2,266 labelled abstracts in 5 classes; CC BY-SA 3.0.",
             "metrics": {"cv_folds": 5, "cv_accuracy": 0.5481, "cv_macro_f1": 0.5435, "chance_accuracy": 0.3332},
             "limitations": "Trained on English journal abstracts, not clinical notes. Texts beyond 256 tokens "
                            "are truncated."},
    "abstain_band": [0.0, 0.4],
    "calibration": {"method": "temperature scaling on 5-fold out-of-fold logits", "temperature": 2.225},
}
HEALTH = {"status": "ok"}
READY = {"status": "ready", "checks": {"database": True, "broker": True}}
NOT_READY = {"status": "unavailable", "checks": {"database": True, "broker": False}}
METRICS = ('# HELP medq_http_requests_total HTTP requests answered\n# TYPE medq_http_requests_total counter\n'
           'medq_http_requests_total{method="POST",route="/v1/jobs",status="202"} 1042.0\n')

# Success bodies by the component schema they illustrate; `OPERATION_EXAMPLES` overrides per operation and status.
BY_SCHEMA: dict[str, Any] = {
    "JobOut": JOB_SUCCEEDED, "BatchOut": BATCH_OUT, "JobList": JOB_LIST, "DeliveryList": DELIVERIES,
    "Redelivery": REDELIVERY, "WebhookSecretOut": SECRET, "AllowlistOut": ALLOWLIST, "ModelOut": MODEL,
    "ModelList": {"models": [MODEL]}, "Health": HEALTH, "Readiness": READY,
    "JobCreate": JOB_CREATE_TEXT, "BatchCreate": BATCH_CREATE, "WebhookAllowlist": ALLOWLIST_IN,
}
OPERATION_EXAMPLES: dict[tuple[str, str], Any] = {
    ("createJob", "202"): JOB_QUEUED, ("cancelJob", "200"): JOB_CANCELED,
    ("rotateWebhookSecret", "200"): ROTATED, ("readyz", "503"): NOT_READY,
}


def _problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"urn:medq:problem:{slug}", "title": title, "status": status, "detail": detail, **extra}


PROBLEMS: dict[int, dict[str, Any]] = {
    400: _problem(400, "malformed-request", "Malformed request", "the body is not valid JSON"),
    401: _problem(401, "unauthorized", "Missing, invalid or expired API key",
                  "the API key is unknown, revoked or expired"),
    403: _problem(403, "forbidden", "The API key lacks the required scope", "this key lacks the 'jobs:write' scope"),
    404: _problem(404, "not-found", "Not found", f"no job {JOB_ID}"),
    406: _problem(406, "not-acceptable", "Not Acceptable", "_format 'xml' is not served; use json, "
                                                           "application/fhir+json or application/json"),
    409: _problem(409, "invalid-transition", "The job's status does not allow this",
                  f"job {JOB_ID} is already succeeded"),
    410: _problem(410, "gone", "The data was removed", f"the data of job {JOB_ID} was removed"),
    413: _problem(413, "request-entity-too-large", "Request Entity Too Large",
                  "The data value transmitted exceeds the capacity limit."),
    415: _problem(415, "unsupported-media-type", "Unsupported Content-Type", "Content-Type text/plain is not "
                  "supported; send application/json, multipart/form-data or application/fhir+json"),
    422: _problem(422, "validation-error", "The request is invalid", "the text is empty",
                  errors=[{"field": "input.text", "message": "the text is empty"}]),
    429: _problem(429, "too-many-requests", "Too many requests",
                  "more than 20 failed authentications from this client in a minute"),
    500: _problem(500, "internal-error", "Internal error", "an unexpected error occurred; it has been logged"),
    503: _problem(503, "database-unavailable", "The database is unavailable", "the database cannot be reached"),
}
PROBLEM_OVERRIDES: dict[tuple[str, int], dict[str, Any]] = {
    ("createJob", 409): _problem(409, "idempotency-conflict", "Idempotency-Key reused with a different body",
                                 "Idempotency-Key 'c0ffee-42' was used with a different request body"),
    ("createJob", 503): _problem(503, "broker-unavailable", "The job queue is unavailable",
                                 "the job queue cannot be reached; nothing was created"),
    ("createBatch", 422): _problem(422, "validation-error", "The request is invalid", "1 invalid field(s)",
                                   errors=[{"field": "items[3].input.text", "message": "the text is empty"}]),
    ("getJobFhir", 409): _problem(409, "invalid-transition", "The job's status does not allow this",
                                  f"job {JOB_ID} is queued; its FHIR result exists once it has succeeded"),
    ("redeliver", 409): _problem(409, "invalid-transition", "The job's status does not allow this",
                                 f"job {JOB_ID} has no webhook"),
    ("listJobs", 400): _problem(400, "malformed-request", "Malformed request", "invalid cursor"),
    ("listJobs", 422): _problem(422, "validation-error", "The request is invalid",
                                "limit must be an integer from 1 to 200",
                                errors=[{"field": "limit", "message": "limit must be an integer from 1 to 200"}]),
}


def bundle_example(spec: ModelSpec | None) -> dict[str, Any]:
    """The FHIR answer for `JOB_SUCCEEDED`, built by the code that builds real ones (`spec` gives label codes)."""
    job = Job(id=JOB_ID, tenant_id="example", model="disease-category", model_version="1.0.0", status="succeeded",
              priority="routine", external_id="ACC-123", input_kind="text", result=RESULT,
              created_at=datetime.fromisoformat(CREATED), started_at=datetime.fromisoformat(STARTED),
              finished_at=datetime.fromisoformat(FINISHED))
    return risk_assessment_bundle(job, spec, base_url="https://medq.st-marys.example.org")
