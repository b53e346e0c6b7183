"""The one place errors become RFC 9457 problem+json responses."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from shared.errors import FieldError, MedqError, ValidationFailed

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(
    *, status: int, slug: str, title: str, detail: str, errors: list[FieldError] | None = None,
    retry_after: int | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:medq:problem:{slug}", "title": title, "status": status, "detail": detail,
        "instance": request.path,
    }
    if errors or status == 422:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors or []] or [
            {"field": "", "message": detail}
        ]
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def from_error(exc: MedqError) -> Response:
    return problem_response(status=exc.status, slug=exc.slug, title=exc.title, detail=exc.detail,
                            errors=exc.errors, retry_after=exc.retry_after)


def validation_failed(exc: ValidationError, *, prefix: str = "") -> ValidationFailed:
    """A pydantic error as a 422 whose `errors[].field` reads like `items[3].input.text`."""
    errors = [FieldError(field=_field_path(prefix, err["loc"]), message=err["msg"]) for err in exc.errors()]
    return ValidationFailed(f"{len(errors)} invalid field(s)", errors=errors)


def _field_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part[:1].isupper() or "[" in part:
            continue  # union-member / validator names, not fields
        else:
            path += f".{part}" if path else part
    return path


def register(app: Flask) -> None:
    app.register_error_handler(MedqError, from_error)
    app.register_error_handler(ValidationError, lambda exc: from_error(validation_failed(exc)))
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _from_unexpected)


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    slug = (exc.name or "error").lower().replace(" ", "-")
    return problem_response(status=status, slug=slug, title=exc.name or "Error",
                            detail=exc.description or exc.name or "")


def _from_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(status=500, slug="internal-error", title="Internal error",
                            detail="an unexpected error occurred; it has been logged")
