"""The OpenAPI 3.1 document of the API (`GET /openapi.json`) and its rendering (`GET /docs`), built with spectree
from the same pydantic models the API validates with (`shared/schemas.py`). Why spectree: docs/openapi.md.

Every view declares what it takes and answers with `@documented(...)`, a typed wrapper over spectree's
`spec.validate(..., skip_validation=True)`: spectree records the models and nothing more, because our views read
JSON, multipart and FHIR on one route and `api/problems.py` turns every error into problem+json. What spectree
cannot express (headers, problem+json, other request content types, examples) is added to its dict by
`api/openapi_extras.py`; `api/openapi_docs.py` renders the result as one self-contained HTML page."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, TypeVar, cast

from flask import Blueprint, Response, current_app, jsonify
from pydantic import BaseModel, Field
from spectree import Response as SpecResponses
from spectree import SecurityScheme, SecuritySchemeData, SpecTree, Tag
from spectree.models import SecureType

from api.openapi_docs import STYLE_SOURCE, render
from api.openapi_extras import complete
from shared.schemas import EventType, Problem

F = TypeVar("F", bound=Callable[..., Any])
Documented = Mapping[int, tuple[type[BaseModel] | None, str]]

BEARER = "bearerAuth"
JOBS = Tag(name="jobs", description="Submit jobs (JSON, multipart or FHIR), follow, cancel and erase them.")
WEBHOOKS = Tag(name="webhooks", description="Signed job callbacks (Standard Webhooks): delivery log, "
                                            "redelivery, the signing secret and the private-target allowlist.")
FHIR = Tag(name="fhir", description="A job's result as a FHIR R4 Bundle (RiskAssessment, Provenance, Device).")
MODELS = Tag(name="models", description="The models this service runs, with their cards, limits and calibration.")
OPERATIONS = Tag(name="operations", description="Health, readiness, metrics, this documentation and the "
                                                "clinician page. No API key needed.")
TAGS = (JOBS, WEBHOOKS, FHIR, MODELS, OPERATIONS)

# The statuses every authenticated /v1 call can answer besides its own (auth, scope, throttling, and the
# database or audit log being down), with what they mean; a route's own list may describe one more precisely.
AUTHENTICATED = (401, 403, 429, 503)
ERRORS: dict[int, str] = {
    400: "Malformed request: the body is not valid JSON.",
    401: "Missing, unknown, revoked or expired API key.",
    403: "The API key lacks the scope this operation needs (`admin` implies every scope).",
    404: "Unknown id, or another tenant's job: the same answer, so ids cannot be probed.",
    406: "The `_format` asked for is not served (XML, …).",
    409: "Conflict with the job's state.",
    410: "The job's data was erased (`DELETE /v1/jobs/{job_id}`).",
    413: "The request body is over the limit (`MEDQ_MAX_BODY_BYTES`, 20 MB by default).",
    415: "Unsupported request `Content-Type`.",
    422: "Invalid input; `errors` names every invalid field.",
    429: "Too many requests: more than 20 failed authentications from this client in a minute (or a tenant "
         "quota); retry after `Retry-After` seconds.",
    500: "An unexpected error; it has been logged with the request id.",
    503: "The database, the job queue or the audit log is unavailable; nothing was half-written. Retry after "
         "`Retry-After` seconds.",
}
PATH_PARAMETERS = {"job_id": "The job's id, as returned when it was created.",
                   "name": "A model name, e.g. `disease-category`."}


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, bool] = Field(description="`database` and `broker`: reachable or not.")


class Redelivery(BaseModel):
    event: EventType
    webhook_id: str = Field(description="The event's `webhook-id`, the same as on its first delivery.")


class AllowlistOut(BaseModel):
    entries: list[str] = Field(description="This tenant's CIDRs or host names.")
    service_wide: list[str] = Field(description="`MEDQ_WEBHOOK_ALLOW`, which applies to every tenant.")


def package_version() -> str:
    try:
        return version("medq")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def build_spectree() -> SpecTree:
    """The one SpecTree of the API. Nothing here comes from settings: views are decorated at import time."""
    bearer = SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", bearer_format="medq API key",
                                description="`Authorization: Bearer <api key>`; keys come from `medq keys create`.")
    return SpecTree(
        "flask", title="medq", version=package_version(),
        description=("medq's HTTP API, version 1: asynchronous classification of clinical text and chest X-rays "
                     "(decision support only: a clinician must review every result). The binding contract is "
                     "the kit's `shared/contract/api-v1.md`; this document is generated from the pydantic models "
                     "the API validates with (`shared/schemas.py`). Every `/v1` call needs "
                     "`Authorization: Bearer <api key>`; every error is `application/problem+json` (RFC 9457)."),
        # strict: only decorated views are documented, and tests/api/test_openapi.py fails for a /v1 route that
        # is not. annotations off: views take no spectree-typed arguments, so their hints need no resolving.
        mode="strict", annotations=False,
        security_schemes=[SecurityScheme(name=BEARER, data=bearer)], security={BEARER: []},
        # Every operation may answer 500 as problem+json; spectree adds its "validation error" status to each
        # route, so that status is the 500 and documents something true.
        validation_error_status=500, validation_error_model=Problem,
        naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda _parent, child: child,
    )


spec = build_spectree()
_BUILDING = threading.Lock()


def documented(operation_id: str, *, tag: Tag, ok: Documented, errors: Iterable[int | tuple[int, str]] = (),
               json: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
               public: bool = False) -> Callable[[F], F]:
    """Declare a view's request and answers for the spec. `ok`: success status → (model or None, description);
    `errors`: its own error statuses (or (status, description)); authenticated views also get `AUTHENTICATED`.
    Validation is skipped: the view validates with the same models itself."""
    codes: dict[str, Any] = {f"HTTP_{code}": answer for code, answer in ok.items()}
    for item in (*(() if public else AUTHENTICATED), *errors):
        code, text = item if isinstance(item, tuple) else (item, ERRORS[item])
        codes[f"HTTP_{code}"] = (Problem, text)
    decorator = spec.validate(json=json, query=query, resp=SpecResponses(**codes), tags=[tag],
                              security={} if public else None, operation_id=operation_id,
                              path_parameter_descriptions=PATH_PARAMETERS, skip_validation=True)
    return cast(Callable[[F], F], decorator)


def openapi_document() -> dict[str, Any]:
    """The finished document for the current app, built on first use: routes do not change once it runs."""
    with _BUILDING:  # spectree's first build moves nested schemas in place: two at once could lose some
        found: dict[str, Any] | None = current_app.extensions.get("medq_openapi")
        if found is None:
            # spectree builds (and caches) its dict from current_app's url_map; ours is a completed deep copy.
            found = complete(copy.deepcopy(spec.spec), tags=[t.to_dict(exclude_none=True) for t in TAGS])
            current_app.extensions["medq_openapi"] = found
    return found


# Not "openapi…": spectree leaves endpoints with that prefix out of the spec, and these two are documented.
bp = Blueprint("apidocs", __name__)

# The page has no script; its one inline style is allowed by hash. Nothing else may load, frame it or be submitted.
DOCS_CSP = (f"default-src 'none'; style-src {STYLE_SOURCE}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'")


@bp.get("/openapi.json")
@documented("getOpenapi", tag=OPERATIONS, public=True, ok={200: (None, "This OpenAPI 3.1 document.")})
def openapi_json() -> Response:
    """The OpenAPI 3.1 document of this API.

    Generated from the pydantic models the API validates with; no API key needed."""
    return jsonify(openapi_document())


@bp.get("/docs")
@documented("getDocs", tag=OPERATIONS, public=True, ok={200: (None, "This documentation as one HTML page.")})
def docs_page() -> Response:
    """This API's documentation, rendered.

    One self-contained HTML page generated on the server from `/openapi.json`: no script, nothing loaded from
    elsewhere, works offline."""
    html: str | None = current_app.extensions.get("medq_docs_html")
    if html is None:
        html = current_app.extensions["medq_docs_html"] = render(openapi_document())
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
