"""Webhook endpoints: a job's delivery log and redelivery, the tenant's signing secret and its rotation, and the
tenant's allowlist of private webhook targets (admin)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from api.auth import principal, require_scope
from api.problems import validation_failed
from api.state import state
from shared import crud, outbox
from shared.db import session_scope
from shared.errors import BadRequest
from shared.models import utcnow
from shared.schemas import DeliveryList, DeliveryOut, WebhookAllowlist, WebhookSecretOut
from shared.webhook_secrets import current_secret, rotate, set_tenant_allowlist, tenant_allowlist

bp = Blueprint("webhooks", __name__, url_prefix="/v1")


@bp.get("/jobs/<job_id>/deliveries")
@require_scope("jobs:read")
def deliveries(job_id: str) -> Response:
    with session_scope(state().engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
        rows = outbox.deliveries(session, job_id=job.id)
        out = DeliveryList(deliveries=[
            DeliveryOut.model_validate({"event": kind, "webhook_id": d.event_id, "attempt": d.attempt, "at": d.at,
                                        "status_code": d.status_code, "error": d.error,
                                        "duration_ms": d.duration_ms})
            for d, kind in rows
        ])
    return jsonify(out.model_dump(mode="json"))


@bp.post("/jobs/<job_id>/redeliver")
@require_scope("jobs:write")
def redeliver(job_id: str) -> tuple[Response, int]:
    with session_scope(state().engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
        event = outbox.redeliver(session, job=job, now=utcnow())
        body = {"event": event.type, "webhook_id": event.id}
    return jsonify(body), 202


@bp.get("/webhook-secret")
@require_scope("jobs:write")
def get_secret() -> Response:
    with session_scope(state().engine) as session:
        secret = current_secret(session, tenant_id=principal().tenant_id).secret
    return jsonify(WebhookSecretOut(secret=secret).model_dump(mode="json"))


@bp.post("/webhook-secret/rotate")
@require_scope("jobs:write")
def rotate_secret() -> Response:
    grace = timedelta(hours=state().settings.webhook_secret_grace_hours)
    with session_scope(state().engine) as session:
        fresh, previous_until = rotate(session, tenant_id=principal().tenant_id, now=utcnow(), grace=grace)
        out = WebhookSecretOut(secret=fresh.secret, previous_valid_until=previous_until)
    return jsonify(out.model_dump(mode="json"))


@bp.get("/webhook-allowlist")
@require_scope("admin")
def get_allowlist() -> Response:
    with session_scope(state().engine) as session:
        entries = tenant_allowlist(session, tenant_id=principal().tenant_id)
    return jsonify({"entries": entries, "service_wide": list(state().settings.webhook_allow_entries)})


@bp.put("/webhook-allowlist")
@require_scope("admin")
def put_allowlist() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object {\"entries\": [...]}")
    try:
        allow = WebhookAllowlist.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
    with session_scope(state().engine) as session:
        set_tenant_allowlist(session, tenant_id=principal().tenant_id, entries=allow.entries)
    return jsonify({"entries": allow.entries, "service_wide": list(state().settings.webhook_allow_entries)})
