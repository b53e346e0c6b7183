"""The webhook outbox: events are recorded in the transaction that makes a job terminal, so a crash between
"result stored" and "webhook sent" loses nothing; a dispatcher sends whatever is due, and a lease lets exactly
one delivery task work on an event at a time (a duplicated message finds the lease taken)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from shared.errors import InvalidTransition
from shared.models import Job, WebhookDelivery, WebhookEvent
from shared.status import JobStatus

EVENT_FOR_STATUS: dict[str, str] = {
    JobStatus.SUCCEEDED: "job.succeeded", JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled", JobStatus.EXPIRED: "job.expired",
}

# A receiver's Retry-After is honoured up to this (the longest default back-off), so it cannot park an event.
RETRY_AFTER_CAP_S = 10 * 3600


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt gave."""

    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after_s: float | None = None
    final: bool = False  # no point retrying (the target is refused)


def record_events(session: Session, *, job_ids: list[str], dispatched_at: datetime | None = None) -> list[str]:
    """Add the missing events of the terminal jobs among `job_ids` that asked for a webhook; return their ids.
    `dispatched_at` says the caller sends them at once (else the dispatcher will)."""
    rows = session.exec(
        select(Job.id, Job.tenant_id, Job.status, Job.webhook_events)
        .where(col(Job.id).in_(job_ids), col(Job.webhook_url).is_not(None))
    ).all()
    wanted = {(job_id, EVENT_FOR_STATUS[status]): tenant_id for job_id, tenant_id, status, events in rows
              if status in EVENT_FOR_STATUS and (not events or EVENT_FOR_STATUS[status] in events)}
    if not wanted:
        return []
    existing = session.exec(
        select(WebhookEvent.job_id, WebhookEvent.type).where(col(WebhookEvent.job_id).in_([j for j, _ in wanted]))
    ).all()
    new = [WebhookEvent(job_id=job_id, tenant_id=tenant_id, type=kind, dispatched_at=dispatched_at)
           for (job_id, kind), tenant_id in wanted.items() if (job_id, kind) not in set(existing)]
    session.add_all(new)
    session.flush()
    return [event.id for event in new]


def claim_due(session: Session, *, now: datetime, redispatch_after_s: float, limit: int = 200) -> list[str]:
    """Mark due events dispatched and return them: pending, due, not leased, and not sent recently."""
    stale = now - timedelta(seconds=redispatch_after_s)
    due = (
        select(WebhookEvent.id)
        .where(WebhookEvent.status == "pending", col(WebhookEvent.next_attempt_at) <= now,
               or_(col(WebhookEvent.dispatched_at).is_(None), col(WebhookEvent.dispatched_at) < stale),
               or_(col(WebhookEvent.lease_until).is_(None), col(WebhookEvent.lease_until) < now))
        .order_by(col(WebhookEvent.next_attempt_at))
        .limit(limit)
    )
    ids = list(session.exec(due).all())
    if not ids:
        return []
    session.exec(update(WebhookEvent).where(col(WebhookEvent.id).in_(ids)).values(dispatched_at=now))
    return ids


def take_lease(session: Session, *, event_id: str, now: datetime, seconds: float) -> WebhookEvent | None:
    """The event, leased to the caller for `seconds`, if it is pending, due and nobody holds it."""
    taken = session.exec(
        update(WebhookEvent)
        .where(col(WebhookEvent.id) == event_id, col(WebhookEvent.status) == "pending",
               col(WebhookEvent.next_attempt_at) <= now,
               or_(col(WebhookEvent.lease_until).is_(None), col(WebhookEvent.lease_until) < now))
        .values(lease_until=now + timedelta(seconds=seconds))
    )
    if not taken.rowcount:
        return None
    return session.exec(select(WebhookEvent).where(WebhookEvent.id == event_id)
                        .execution_options(populate_existing=True)).one()


def finish_attempt(session: Session, *, event: WebhookEvent, outcome: Attempt, now: datetime,
                   delays: tuple[float, ...], jitter: float) -> str:
    """Log the attempt and decide what comes next; returns the event's new status."""
    attempt = event.attempts + 1
    session.add(WebhookDelivery(event_id=event.id, job_id=event.job_id, attempt=attempt, at=now,
                                status_code=outcome.status_code, error=outcome.error,
                                duration_ms=round(outcome.duration_ms, 1)))
    status, next_at = _next_step(event.round_attempts + 1, outcome, now, delays, jitter)
    session.exec(
        update(WebhookEvent).where(col(WebhookEvent.id) == event.id)
        .values(status=status, attempts=attempt, round_attempts=event.round_attempts + 1,
                next_attempt_at=next_at or event.next_attempt_at, dispatched_at=None, lease_until=None,
                last_error=(outcome.error or (f"HTTP {outcome.status_code}" if status != "delivered" else None)))
    )
    return status


def _next_step(done: int, outcome: Attempt, now: datetime, delays: tuple[float, ...],
               jitter: float) -> tuple[str, datetime | None]:
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        return "delivered", None
    if code == 410:
        return "stopped", None  # the receiver said the endpoint is gone for good
    if outcome.final or done > len(delays):
        return "failed", None
    delay = delays[done - 1] * (1 + random.uniform(-jitter, jitter))
    if outcome.retry_after_s is not None:
        delay = max(delay, min(outcome.retry_after_s, RETRY_AFTER_CAP_S))
    return "pending", now + timedelta(seconds=delay)


def redeliver(session: Session, *, job: Job, now: datetime) -> WebhookEvent:
    """Queue the job's last event again (same id) with a fresh retry schedule."""
    event = session.exec(select(WebhookEvent).where(WebhookEvent.job_id == job.id)
                         .order_by(col(WebhookEvent.created_at).desc())).first()
    if event is None:
        reason = "has no webhook" if job.webhook_url is None else "has no event yet (it has not finished)"
        raise InvalidTransition(f"job {job.id} {reason}")
    session.exec(
        update(WebhookEvent).where(col(WebhookEvent.id) == event.id)
        .values(status="pending", round_attempts=0, next_attempt_at=now, dispatched_at=None)
    )
    return event


def deliveries(session: Session, *, job_id: str) -> list[tuple[WebhookDelivery, str]]:
    """The job's delivery attempts with their event type, oldest first."""
    rows = session.exec(
        select(WebhookDelivery, WebhookEvent.type)
        .join(WebhookEvent, and_(col(WebhookEvent.id) == col(WebhookDelivery.event_id)))
        .where(WebhookDelivery.job_id == job_id)
        .order_by(col(WebhookDelivery.at), col(WebhookDelivery.id))
    ).all()
    return [(delivery, kind) for delivery, kind in rows]
