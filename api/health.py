"""/healthz (the process answers) and /readyz (database and broker reachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.state import state
from shared.db import ping

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    st = state()
    checks = {"database": ping(st.engine), "broker": st.enqueuer.ping()}
    ready = all(checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = str(st.settings.retry_after_seconds)
    return response
