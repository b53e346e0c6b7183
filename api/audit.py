"""Request ids and the audit trail for every `/v1` call (reads too): who, tenant, action, object, outcome.
If the audit entry cannot be written the answer becomes a 503: no unaudited access to patient data."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, Response, g, request

from api.problems import problem_response
from api.state import state
from shared.audit import Access, append
from shared.db import session_scope
from shared.logs import REQUEST_ID
from shared.models import utcnow

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def register(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.after_request(_audit)
    app.teardown_request(_forget_request_id)


def request_id() -> str:
    found: str = g.get("request_id") or "-"
    return found


def _forget_request_id(_exc: BaseException | None) -> None:
    REQUEST_ID.set(None)  # the thread serves other requests next


def _assign_request_id() -> None:
    # A caller's own id (an EHR's correlation id) is kept when it is safe to log; otherwise we make one.
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    REQUEST_ID.set(g.request_id)  # every log line of this request carries it


def _audit(response: Response) -> Response:
    response.headers["X-Request-ID"] = request_id()
    if not request.path.startswith("/v1/"):
        return response
    who = g.get("principal")
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    base = Access(at=utcnow(), tenant_id=who.tenant_id if who else None, key_id=who.key_id if who else None,
                  action=f"{request.method} {rule}", object_id=None, outcome=response.status_code,
                  request_id=request_id(), client=request.remote_addr)
    try:
        with session_scope(state().engine) as session:
            # One entry per request, naming every job it touched (a batch: all of them, comma-separated).
            append(session, Access(**{**base.__dict__, "object_id": ",".join(_objects(response)) or None}))
    except Exception as exc:  # any failure (MedqError included): refuse rather than serve unaudited
        log.error("audit entry not written for %s %s (request %s): %s", request.method, request.path,
                  request_id(), exc)
        return problem_response(status=503, slug="audit-unavailable", title="The audit log is unavailable",
                                detail="the request could not be recorded in the audit log; retry later",
                                retry_after=5)
    log.info("%s %s %d", request.method, rule, response.status_code,
             extra={"tenant_id": base.tenant_id, "key_id": base.key_id, "client": base.client})
    return response


def _objects(response: Response) -> list[str]:
    """The job ids (or model name) the request touched: from the URL, else from the answer for creations."""
    args: dict[str, Any] = request.view_args or {}
    for name in ("job_id", "name"):
        if args.get(name):
            return [str(args[name])[:100]]
    if request.method == "POST" and response.status_code in (200, 202) and response.is_json:
        body = response.get_json(silent=True) or {}
        if isinstance(body.get("id"), str):
            return [body["id"]]
        return [job["id"] for job in body.get("jobs", []) if isinstance(job, dict) and "id" in job]
    return []
