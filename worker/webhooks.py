"""Delivering one webhook event: lease it, build and sign the body, pass the SSRF guard again, POST to the
checked address (redirects not followed, answer size capped), log the attempt and schedule the next one.
Plain functions with no Celery import; the task in `worker.tasks` only passes the event id."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from shared import outbox
from shared.db import session_scope
from shared.errors import MedqError, WebhookRefused
from shared.fhir import FhirBuildError, risk_assessment_bundle
from shared.logs import REQUEST_ID
from shared.models import Job, WebhookEvent, utcnow
from shared.modelspec import ModelSpec, discover
from shared.presenters import job_out
from shared.settings import Settings
from shared.ssrf import Allowlist, Resolver, Target, check_url, system_resolver
from shared.webhook_secrets import signing_secrets, tenant_allowlist
from worker import metrics

log = logging.getLogger(__name__)

USER_AGENT = "medq-webhooks/1"


@dataclass
class Delivery:
    """What a process needs to deliver: one pooled HTTP client (creating one is costly), the resolver, and the
    model specs (terminology codes for FHIR bodies)."""

    settings: Settings
    engine: Engine
    resolve: Resolver = system_resolver
    client: httpx.Client = field(default_factory=lambda: httpx.Client(follow_redirects=False))
    specs: dict[str, ModelSpec] | None = None

    def spec(self, model: str) -> ModelSpec | None:
        if self.specs is None:
            self.specs = discover(self.settings.model_dir)
        return self.specs.get(model)


@dataclass(frozen=True)
class Message:
    """An event ready to send: where, what, and with which secrets."""

    url: str
    body: str
    secrets: list[str]
    allow: Allowlist
    request_id: str | None = None  # of the submission; sent back as X-Request-ID


def deliver(event_id: str, *, delivery: Delivery) -> str | None:
    """Attempt one delivery of `event_id`; returns the event's new status, or None if it was not ours to send
    (already delivered, not due, or another task holds it)."""
    settings = delivery.settings
    REQUEST_ID.set(None)
    with session_scope(delivery.engine) as session:
        event = outbox.take_lease(session, event_id=event_id, now=utcnow(), seconds=settings.webhook_timeout_s + 30)
        if event is None:
            return None
        message = _message(session, event, delivery)
    REQUEST_ID.set(message.request_id if message else None)
    sent_at = utcnow()
    outcome = _send(event, message, sent_at, delivery) if message else outbox.Attempt(
        None, "the job no longer has a webhook", 0.0, final=True)
    with session_scope(delivery.engine) as session:
        status = outbox.finish_attempt(session, event=event, outcome=outcome, now=utcnow(),
                                       delays=settings.webhook_retry_delays, jitter=settings.webhook_jitter)
    metrics.WEBHOOKS.labels(_outcome(outcome)).inc()
    log.info("webhook %s for job %s: attempt %d → %s (%s)", event.id, event.job_id, event.attempts + 1, status,
             outcome.status_code or outcome.error)
    return status


def _message(session: Any, event: WebhookEvent, delivery: Delivery) -> Message | None:
    job = session.get(Job, event.job_id)
    if job is None or job.webhook_url is None:
        return None
    allow = Allowlist.parse([*delivery.settings.webhook_allow_entries,
                             *tenant_allowlist(session, tenant_id=event.tenant_id)])
    fhir = _fhir(job, delivery) if job.result_format == "fhir" and event.type == "job.succeeded" else None
    return Message(url=job.webhook_url, body=event_body(event, job, fhir=fhir),
                   secrets=signing_secrets(session, tenant_id=event.tenant_id, now=utcnow()), allow=allow,
                   request_id=job.request_id)


def event_body(event: WebhookEvent, job: Job, *, fhir: dict[str, Any] | None = None) -> str:
    """The Standard Webhooks body: the same bytes on every retry unless the job's data was erased since."""
    body: dict[str, Any] = {"type": event.type, "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
                            "data": job_out(job).model_dump(mode="json")}
    if job.result_format == "fhir" and event.type == "job.succeeded":
        body["fhir"] = fhir
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _fhir(job: Job, delivery: Delivery) -> dict[str, Any] | None:
    """The FHIR bundle for the body, or None (erased data; a builder bug must not hold back the notification)."""
    try:
        return risk_assessment_bundle(job, delivery.spec(job.model), base_url=delivery.settings.public_base_url)
    except (MedqError, FhirBuildError) as exc:
        log.warning("job %s: webhook sent without its FHIR bundle: %s", job.id, exc)
        return None


def sign(message_id: str, at: datetime, body: str, secrets: list[str]) -> dict[str, str]:
    """The three Standard Webhooks headers; every valid secret signs (rotation grace)."""
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures}


def _send(event: WebhookEvent, message: Message, at: datetime, delivery: Delivery) -> outbox.Attempt:
    started = time.perf_counter()
    try:
        target = check_url(message.url, message.allow, resolve=delivery.resolve)
    except WebhookRefused as exc:
        return outbox.Attempt(None, f"refused: {exc.detail}", 0.0, final=True)
    headers = {**sign(event.id, at, message.body, message.secrets), "content-type": "application/json",
               "user-agent": USER_AGENT}
    if message.request_id:
        headers["x-request-id"] = message.request_id
    try:
        code, retry_after = _post(target, message.body.encode(), headers, delivery)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return outbox.Attempt(None, error[:500], _ms(started))
    return outbox.Attempt(code, None, _ms(started), retry_after)


def _post(target: Target, body: bytes, headers: dict[str, str], delivery: Delivery) -> tuple[int, float | None]:
    """POST to the first checked address that accepts a connection; the Host header and TLS name stay those of
    the URL, so certificates are still verified against the host name."""
    settings = delivery.settings
    last: httpx.HTTPError | None = None
    for address in target.addresses:
        url = httpx.URL(target.url).copy_with(host=address)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        try:
            with delivery.client.stream("POST", url, content=body, headers={**headers, "host": host_header},
                                        timeout=settings.webhook_timeout_s, extensions=extensions) as response:
                _drain(response, settings.webhook_max_response_bytes)
                return response.status_code, _retry_after(response.headers.get("retry-after"))
        except httpx.ConnectError as exc:
            last = exc
    assert last is not None
    raise last


def _drain(response: httpx.Response, limit: int) -> None:
    """Read at most `limit` bytes of the answer (we only need its status), then hang up."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read >= limit:
            break


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def _outcome(attempt: outbox.Attempt) -> str:
    if attempt.status_code is not None:
        return f"{attempt.status_code // 100}xx"
    return "refused" if attempt.final else "error"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
