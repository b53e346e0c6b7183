"""GET /v1/jobs/{id}/fhir: the job's result as a FHIR R4 Bundle (RiskAssessment + Provenance + Device), built by
`shared.fhir`. Errors stay problem+json like the rest of the API: 404 unknown or another tenant's job, 409 not
finished or no result, 410 after DELETE.

FHIR request conventions honoured (kept small; docs/fhir-dicom.md):
- `_format`: `json`, `application/fhir+json` (the default) or `application/json` (answered with that type);
  XML or anything else → 406.
- `_pretty=true`: indented JSON.
- `Prefer: return=minimal` → 200 with an empty body (the headers still say where and when); `return=
  representation` (the default) → the Bundle. `Preference-Applied` says which was used."""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotAcceptable

from api.auth import principal, require_scope
from api.openapi import FHIR, documented
from api.state import state
from shared import crud
from shared.db import session_scope
from shared.fhir import risk_assessment_bundle

bp = Blueprint("fhir", __name__, url_prefix="/v1/jobs")

FHIR_JSON = "application/fhir+json"
# `+` in a query string decodes to a space, which FHIR clients often leave unescaped: accept both spellings.
_FORMATS = {"json": FHIR_JSON, FHIR_JSON: FHIR_JSON, "application/json+fhir": FHIR_JSON,
            "application/json": "application/json"}
_PREFER_RETURN = re.compile(r"(?:^|[,;\s])return\s*=\s*\"?([A-Za-z]+)", re.IGNORECASE)


@bp.get("/<job_id>/fhir")
@documented("getJobFhir", tag=FHIR, ok={200: (None, "The result as a FHIR R4 Bundle (empty with "
                                                   "`Prefer: return=minimal`).")},
            errors=(404, 406, (409, "The job has no result: queued or running, or it failed, was canceled or "
                                    "expired."), 410))
@require_scope("jobs:read")
def get_fhir(job_id: str) -> Response:
    """Get a job's result as FHIR R4.

    A `Bundle` (type `collection`) holding the `RiskAssessment` (status `preliminary`, one prediction per label
    with SNOMED CT / ICD-10 codes), its `Provenance` and the model as a `Device`. Errors stay problem+json.
    Scope `jobs:read`."""
    st = state()
    media_type = _media_type(request.args.get("_format"))
    with session_scope(st.engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
    bundle = risk_assessment_bundle(job, st.specs.get(job.model), base_url=request.host_url)
    minimal = _prefer_return() == "minimal"
    pretty = request.args.get("_pretty", "").lower() == "true"
    body = "" if minimal else json.dumps(bundle, indent=2) if pretty else json.dumps(bundle, separators=(",", ":"))
    response = Response(body, status=200, mimetype=media_type)
    response.headers["Content-Location"] = request.path
    response.headers["Preference-Applied"] = f"return={'minimal' if minimal else 'representation'}"
    if job.finished_at is not None:
        response.last_modified = job.finished_at
    return response


def _media_type(requested: str | None) -> str:
    if requested is None:
        return FHIR_JSON
    key = requested.strip().lower().replace(" ", "+").split(";")[0]
    if key not in _FORMATS:
        raise NotAcceptable(f"_format {requested!r} is not served; use json, application/fhir+json or "
                            "application/json")
    return _FORMATS[key]


def _prefer_return() -> str:
    match = _PREFER_RETURN.search(request.headers.get("Prefer", ""))
    return match.group(1).lower() if match else "representation"
