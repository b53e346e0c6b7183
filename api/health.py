"""/healthz (the process answers) and /readyz (database and broker reachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.openapi import OPERATIONS, Health, Readiness, documented
from api.state import state
from shared.db import ping

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented("healthz", tag=OPERATIONS, public=True, ok={200: (Health, "The process answers.")})
def healthz() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@documented("readyz", tag=OPERATIONS, public=True, ok={
    200: (Readiness, "The database and the broker are reachable."),
    503: (Readiness, "Not ready: `checks` says what is unreachable. Retry after `Retry-After` seconds."),
})
def readyz() -> Response:
    """Readiness: the database and the broker are reachable."""
    st = state()
    checks = {"database": ping(st.engine), "broker": st.enqueuer.ping()}
    ready = all(checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = str(st.settings.retry_after_seconds)
    return response
