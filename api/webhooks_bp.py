"""Webhook endpoints: a job's delivery log and redelivery, the tenant's signing secret and its rotation, and the
tenant's allowlist of private webhook targets (admin)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from api.auth import principal, require_scope
from api.openapi import WEBHOOKS, AllowlistOut, Redelivery, documented
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
@documented("listDeliveries", tag=WEBHOOKS, ok={200: (DeliveryList, "The attempts, oldest first.")}, errors=(404,))
@require_scope("jobs:read")
def deliveries(job_id: str) -> Response:
    """List a job's webhook delivery attempts.

    Oldest first, `attempt` counting from 1 per event; `status_code` null when no answer came (`error` says
    why). Scope `jobs:read`."""
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
@documented("redeliver", tag=WEBHOOKS, ok={202: (Redelivery, "Queued for delivery again.")},
            errors=(404, (409, "The job has no webhook, or no event yet (it has not finished).")))
@require_scope("jobs:write")
def redeliver(job_id: str) -> tuple[Response, int]:
    """Send a job's last webhook event again.

    Same `webhook-id` as before (receivers de-duplicate on it), with a fresh retry schedule. Scope
    `jobs:write`."""
    with session_scope(state().engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
        event = outbox.redeliver(session, job=job, now=utcnow())
        body = {"event": event.type, "webhook_id": event.id}
    return jsonify(body), 202


@bp.get("/webhook-secret")
@documented("getWebhookSecret", tag=WEBHOOKS, ok={200: (WebhookSecretOut, "The current secret.")})
@require_scope("jobs:write")
def get_secret() -> Response:
    """Get the tenant's webhook signing secret.

    A `whsec_` secret (Standard Webhooks); verify `webhook-signature` with it. Scope `jobs:write`."""
    with session_scope(state().engine) as session:
        secret = current_secret(session, tenant_id=principal().tenant_id).secret
    return jsonify(WebhookSecretOut(secret=secret).model_dump(mode="json"))


@bp.post("/webhook-secret/rotate")
@documented("rotateWebhookSecret", tag=WEBHOOKS,
            ok={200: (WebhookSecretOut, "The new secret, and until when the previous one still signs.")})
@require_scope("jobs:write")
def rotate_secret() -> Response:
    """Rotate the tenant's webhook signing secret.

    Deliveries are signed with both secrets until `previous_valid_until` (24 h by default), so receivers can
    switch without losing events. Scope `jobs:write`."""
    grace = timedelta(hours=state().settings.webhook_secret_grace_hours)
    with session_scope(state().engine) as session:
        fresh, previous_until = rotate(session, tenant_id=principal().tenant_id, now=utcnow(), grace=grace)
        out = WebhookSecretOut(secret=fresh.secret, previous_valid_until=previous_until)
    return jsonify(out.model_dump(mode="json"))


@bp.get("/webhook-allowlist")
@documented("getWebhookAllowlist", tag=WEBHOOKS, ok={200: (AllowlistOut, "The tenant's and the service's entries.")})
@require_scope("admin")
def get_allowlist() -> Response:
    """Get the tenant's allowlist of private webhook targets.

    Webhook URLs resolving to private, loopback or link-local addresses are refused unless listed here or in
    `MEDQ_WEBHOOK_ALLOW`. Scope `admin`."""
    with session_scope(state().engine) as session:
        entries = tenant_allowlist(session, tenant_id=principal().tenant_id)
    return jsonify({"entries": entries, "service_wide": list(state().settings.webhook_allow_entries)})


@bp.put("/webhook-allowlist")
@documented("putWebhookAllowlist", tag=WEBHOOKS, json=WebhookAllowlist,
            ok={200: (AllowlistOut, "The tenant's entries, replaced.")},
            errors=((400, "The body is not a JSON object."), 413, (422, "Invalid entries (at most 100).")))
@require_scope("admin")
def put_allowlist() -> Response:
    """Replace the tenant's allowlist of private webhook targets.

    CIDRs or host names; plain `http://` webhooks are accepted only for allowlisted targets. Scope `admin`."""
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
