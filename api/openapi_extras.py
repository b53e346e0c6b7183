"""What spectree cannot express, added to the dict it generates (`complete`): request and response headers,
problem+json error bodies, the multipart and FHIR alternatives of `POST /v1/jobs`, the FHIR, metrics and HTML
answers, the clinician page, and an example for every body (`api/openapi_examples.py`). Keyed by operationId, so
a view's `@documented("createJob", ...)` is all that ties it to what is added here."""

from __future__ import annotations

from typing import Any

from api import openapi_examples as ex
from api.inputs import FHIR_JSON, FORM_FIELDS
from api.state import state

Doc = dict[str, Any]
PROBLEM_JSON = "application/problem+json"
HTML = "text/html"


def _ref(kind: str, name: str) -> Doc:
    return {"$ref": f"#/components/{kind}/{name}"}


def _header(description: str, example: Any, schema: Doc | None = None) -> Doc:
    return {"description": description, "schema": schema or {"type": "string"}, "example": example}


def _parameter(name: str, where: str, description: str, example: Any, schema: Doc | None = None) -> Doc:
    return {"name": name, "in": where, "required": False, **_header(description, example, schema)}


HEADERS: Doc = {
    "X-Request-ID": _header("The request's id: the caller's own `X-Request-ID` when it is 1 to 64 characters of "
                            "`A-Za-z0-9._:-`, else a generated one. Every log line and audit entry of the request "
                            "carries it.", "5f0c6f2a9d8e4b7c91a2e3d4c5b6a798"),
    "Retry-After": _header("Seconds to wait before trying again.", 5, {"type": "integer", "minimum": 0}),
    "Location": _header("Where the job is: `/v1/jobs/{job_id}`.", f"/v1/jobs/{ex.JOB_ID}"),
    "Preference-Applied": _header("The `Prefer` that was honoured: `return=representation` or `return=minimal`.",
                                  "return=representation"),
    "Content-Location": _header("This resource's path.", f"/v1/jobs/{ex.JOB_ID}/fhir"),
    "Last-Modified": _header("When the job finished (HTTP date).", "Sun, 22 Nov 2026 22:12:30 GMT"),
}
PARAMETERS: Doc = {
    "X-Request-ID": _parameter("X-Request-ID", "header", "Your correlation id for this request (1 to 64 characters of "
                               "`A-Za-z0-9._:-`); echoed back, logged and audited. Otherwise one is generated.",
                               "ehr-7f3a9c01", {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"}),
    "Idempotency-Key": _parameter(
        "Idempotency-Key", "header", "Makes a retried POST safe: the same key with the same body (equal JSON after "
        "parsing) answers the same job(s) again with `200`; with another body `409`. Kept 24 h per tenant.",
        "c0ffee-42", {"type": "string", "minLength": 1, "maxLength": 255}),
    "Prefer-wait": _parameter(
        "Prefer", "header", "`wait=N`: hold the answer up to N seconds (above 60 counts as 60) and answer `200` with "
        "the finished job if it finishes in time, else `202` as usual. A malformed `Prefer` is ignored.", "wait=10"),
    "Prefer-wait-get": _parameter(
        "Prefer", "header", "`wait=N`: long-poll — hold the answer until the job is terminal or N seconds pass "
        "(above 60 counts as 60), then answer `200` with the job as it is. A malformed `Prefer` is ignored.",
        "wait=30"),
    "Prefer-wait-batch": _parameter(
        "Prefer", "header", "`wait=N`: hold the answer until every job of the batch is terminal (`200`, with the "
        "results) or N seconds pass (`202` as usual; above 60 counts as 60). A malformed `Prefer` is ignored.",
        "wait=30"),
    "Prefer-return": _parameter(
        "Prefer", "header", "`return=minimal`: `200` with an empty body (the headers say where and when); "
        "`return=representation` (the default): the Bundle.", "return=minimal"),
    "_format": _parameter("_format", "query", "`json` or `application/fhir+json` (the default): "
                          "`application/fhir+json`; `application/json`: the same body as `application/json`; "
                          "anything else: `406`.", "json"),
    "_pretty": _parameter("_pretty", "query", "`true`: indented JSON.", "true", {"type": "boolean"}),
}
REQUEST_PARAMETERS: dict[str, list[str]] = {
    "createJob": ["Idempotency-Key", "Prefer-wait"], "createBatch": ["Idempotency-Key", "Prefer-wait-batch"],
    "getJob": ["Prefer-wait-get"],
    "getJobFhir": ["Prefer-return", "_format", "_pretty"],
}
RESPONSE_HEADERS: dict[tuple[str, str], list[str]] = {
    ("createJob", "200"): ["Location"], ("createJob", "202"): ["Location"],
    ("getJobFhir", "200"): ["Preference-Applied", "Content-Location", "Last-Modified"],
}
_BUNDLE_SCHEMA: Doc = {
    "type": "object", "required": ["resourceType", "type", "entry"],
    "description": "A FHIR R4 `Bundle` of type `collection`: the `RiskAssessment` (one prediction per label, "
                   "SNOMED CT / ICD-10 codes, AI-asserted security tag), its `Provenance` and the model as a "
                   "`Device`. Details: docs/fhir-dicom.md.",
    "properties": {"resourceType": {"const": "Bundle"}, "type": {"const": "collection"},
                   "entry": {"type": "array", "items": {"type": "object"}}},
}
_FHIR_INPUT_SCHEMA: Doc = {
    "type": "object", "required": ["resourceType"],
    "description": "A FHIR R4 `DocumentReference`, or a `Bundle` holding one and optionally its `Patient`. "
                   "`content[0].attachment` holds the input as inline base64 `data`: `text/plain` → a text job; "
                   "`image/png`, `image/jpeg`, `application/dicom` → an image job. The job's other fields are query "
                   "parameters (`model` required).",
    "properties": {"resourceType": {"enum": ["DocumentReference", "Bundle"]}},
}


def complete(doc: Doc, *, tags: list[Doc]) -> Doc:
    """Add to spectree's `doc` (in place) everything listed in this module's docstring."""
    doc["tags"] = tags
    doc["components"]["headers"] = HEADERS
    doc["components"]["parameters"] = PARAMETERS
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for operation in item.values():
            name = operation["operationId"]
            extra = ("X-Request-ID", *REQUEST_PARAMETERS.get(name, []))
            own = operation["parameters"] + (_fhir_query(schemas["JobCreate"]) if name == "createJob" else [])
            operation["parameters"] = [*map(_plain_query, own), *(_ref("parameters", p) for p in extra)]
            if name == "createJob":
                _alternative_bodies(operation["requestBody"], schemas["JobCreate"])
            _request_examples(operation.get("requestBody"))
            _responses(operation, path)
    doc["paths"]["/"] = {"get": _clinician_page()}
    return doc


def _plain_query(parameter: Doc) -> Doc:
    """A query parameter is absent or a string, never JSON null: drop the `| null` of an optional model field."""
    schema = parameter.get("schema", {})
    kept = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    if parameter.get("in") != "query" or len(kept) != 1:
        return parameter
    plain = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**parameter, "schema": {**kept[0], **plain}}


def _fhir_query(job_create: Doc) -> list[Doc]:
    """With a FHIR body the job's own fields travel as query parameters: the same fields multipart sends."""
    out = []
    for field in FORM_FIELDS:
        schema = {"type": "string", "description": "A `WebhookSpec` as JSON."} if field == "webhook" else \
            job_create["properties"][field]
        out.append({"name": field, "in": "query", "required": False, "schema": schema,
                    "description": f"With a `{FHIR_JSON}` body only: the job's `{field}`"
                                   f"{' (required then)' if field == 'model' else ''}."})
    return out


def _alternative_bodies(body: Doc, job_create: Doc) -> None:
    properties = {field: job_create["properties"][field] for field in FORM_FIELDS}
    properties["webhook"] = {**properties["webhook"], "description": "A `WebhookSpec` as JSON text."}
    properties["file"] = {"type": "string", "contentMediaType": "application/octet-stream",
                          "description": "The image: PNG, JPEG or DICOM."}
    properties["media_type"] = {"type": "string", "description": "Overrides the file part's own Content-Type, "
                                                                 "e.g. `application/dicom`."}
    body["description"] = ("The job as JSON; or an image as `multipart/form-data` (a `file` part, the other fields "
                            "as form fields, `webhook` as JSON); or a FHIR resource (the other fields as query "
                            "parameters).")
    body["content"]["application/json"]["examples"] = {
        "text": {"summary": "A clinical text", "value": ex.JOB_CREATE_TEXT},
        "image": {"summary": "A chest X-ray as base64, with a webhook and an explanation",
                  "value": ex.JOB_CREATE_IMAGE},
    }
    body["content"]["multipart/form-data"] = {
        "schema": {"type": "object", "required": ["model", "file"], "properties": properties},
        "encoding": {"file": {"contentType": "image/png, image/jpeg, application/dicom"}},
        "example": ex.MULTIPART,
    }
    body["content"][FHIR_JSON] = {"schema": _FHIR_INPUT_SCHEMA, "example": ex.FHIR_INPUT}


def _request_examples(body: Doc | None) -> None:
    for media in (body or {}).get("content", {}).values():
        name = media["schema"].get("$ref", "").rsplit("/", 1)[-1]
        if "examples" not in media and "example" not in media and name in ex.BY_SCHEMA:
            media["example"] = ex.BY_SCHEMA[name]


def _responses(operation: Doc, path: str) -> None:
    name, responses = operation["operationId"], operation["responses"]
    for code, answer in responses.items():
        headers = ["X-Request-ID", *(["Retry-After"] if code in ("429", "503") else []),
                   *RESPONSE_HEADERS.get((name, code), [])]
        answer["headers"] = {header: _ref("headers", header) for header in headers}
        special = _special_content(name, code)
        if special is not None:
            answer["content"] = special
            continue
        media = answer.get("content", {}).get("application/json")
        schema = media["schema"].get("$ref", "").rsplit("/", 1)[-1] if media else None
        if media is None:
            continue
        if schema == "Problem":
            answer["content"] = {PROBLEM_JSON: {**media, "example": _problem_example(name, int(code), path)}}
        elif (name, code) in ex.OPERATION_EXAMPLES or schema in ex.BY_SCHEMA:
            media["example"] = ex.OPERATION_EXAMPLES.get((name, code), ex.BY_SCHEMA.get(schema or ""))
    operation["responses"] = dict(sorted(responses.items()))


def _problem_example(operation: str, status: int, path: str) -> Doc:
    example = ex.PROBLEM_OVERRIDES.get((operation, status), ex.PROBLEMS[status])
    instance = path.replace("{job_id}", ex.JOB_ID).replace("{name}", "disease-category")
    return {**example, "instance": instance}


def _special_content(operation: str, code: str) -> Doc | None:
    """Answers that are not a pydantic model's JSON."""
    if code != "200":
        return None
    if operation == "getJobFhir":
        bundle = {"schema": _BUNDLE_SCHEMA, "example": _bundle_example()}
        return {FHIR_JSON: bundle, "application/json": bundle}
    return _PLAIN_CONTENT.get(operation)


_PAGE = {HTML: {"schema": {"type": "string"}, "example": "<!doctype html><html lang=\"en\">…</html>"}}
_PLAIN_CONTENT: dict[str, Doc] = {
    "metrics": {"text/plain": {"schema": {"type": "string", "description": "Prometheus text format 0.0.4."},
                               "example": ex.METRICS}},
    "getOpenapi": {"application/json": {"schema": {"type": "object", "description": "OpenAPI 3.1."},
                                        "example": {"openapi": "3.1.0", "info": {"title": "medq"},
                                                    "paths": {"/v1/jobs": {}}}}},
    "getDocs": _PAGE,
}


def _clinician_page() -> Doc:
    # Documented here rather than decorated: api/page.py serves a file, which spectree's wrapper would buffer.
    return {
        "operationId": "clinicianPage", "tags": ["operations"], "security": [],
        "summary": "The clinician page.",
        "description": "Plain HTML/JS (no build step, nothing loaded from elsewhere) that calls this `/v1` API "
                       "with the key the user types; served with a strict Content-Security-Policy.",
        "parameters": [_ref("parameters", "X-Request-ID")],
        "responses": {"200": {"description": "The page.", "headers": {"X-Request-ID": _ref("headers", "X-Request-ID")},
                              "content": _PAGE}},
    }


def _bundle_example() -> Doc:
    """A real Bundle from `shared.fhir` for the README's example job, so the example cannot drift from the code."""
    return ex.bundle_example(state().specs.get("disease-category"))
