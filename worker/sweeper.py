"""The sweeper: the backstop that turns "the broker lost a message" into "the job runs a little later".

Two ways a job can be left behind with Celery over Redis, and what the sweeper does about each:

- **running for too long** — its worker was killed (OOM, kill -9, power cut) after claiming it. Redis would only
  redeliver the message after the visibility timeout (an hour). Jobs `running` with `started_at` older than
  `MEDQ_SWEEP_RUNNING_AFTER_S` go back to `queued` (compare-and-set) and get a new message.
- **queued for too long** — its message never reached Redis (the API crashed between the row and the send), was
  reserved by a worker that died, or was lost with a Redis that had no append-only file. Jobs `queued` with
  `created_at` older than `MEDQ_SWEEP_QUEUED_AFTER_S` get a new message, at most once per that period.

A duplicate message is harmless: claims and results are compare-and-set on the job's status, so a job is never
given a second result. Plain functions, no Celery: the task in `worker/tasks.py` passes a `send`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.db import session_scope
from shared.models import Job, utcnow
from shared.status import JobStatus, Priority

log = logging.getLogger(__name__)

TASK_SWEEP = "medq.sweep_stuck_jobs"
# Ids per message: the API's batch limit, so a sweep message is no bigger than one the API sends.
MESSAGE_IDS = 256
# Jobs looked at per sweep: a huge backlog is handled over a few sweeps instead of one long transaction.
SWEEP_LIMIT = 2000
MARK_PREFIX = "medq:sweep:resent:"

Send = Callable[[list[str], Priority], None]


class Marks(Protocol):
    """Remembers which jobs were re-sent recently (Redis in production), so that a long backlog whose messages
    are all still in the queue is not given a duplicate of every message on every sweep."""

    def set(self, name: str, value: str, *, ex: int, nx: bool = False) -> object: ...

    def delete(self, *names: str) -> object: ...


@dataclass
class SweepReport:
    requeued_running: list[str] = field(default_factory=list)
    resent_queued: list[str] = field(default_factory=list)
    messages: int = 0


def sweep(engine: Engine, *, running_after_s: float, queued_after_s: float, send: Send, marks: Marks) -> SweepReport:
    """One sweep: requeue stale running jobs, re-send stale queued ones. Returns what it did."""
    now = utcnow()
    report = SweepReport()
    mark_ttl = max(1, round(queued_after_s))
    with session_scope(engine) as session:
        stale_running = requeue_stale_running(session, cutoff=now - timedelta(seconds=running_after_s))
    # Marked first: the next sweep must not re-send them again as "queued too long" (their created_at is old).
    for job_id, _ in stale_running:
        marks.set(MARK_PREFIX + job_id, "1", ex=mark_ttl)
    report.requeued_running = [job_id for job_id, _ in stale_running]
    report.messages += _send_grouped(stale_running, send, marks)
    with session_scope(engine) as session:
        candidates = stale_queued(session, cutoff=now - timedelta(seconds=queued_after_s))
    fresh = [(job_id, p) for job_id, p in candidates if marks.set(MARK_PREFIX + job_id, "1", ex=mark_ttl, nx=True)]
    report.resent_queued = [job_id for job_id, _ in fresh]
    report.messages += _send_grouped(fresh, send, marks)
    if report.requeued_running or report.resent_queued:
        log.warning("sweeper: %d stale running job(s) requeued, %d stale queued job(s) re-sent in %d message(s)",
                    len(report.requeued_running), len(report.resent_queued), report.messages)
    return report


def requeue_stale_running(session: Session, *, cutoff: datetime) -> list[tuple[str, Priority]]:
    """Running jobs started before `cutoff` back to queued. `started_at` is cleared so that the next claim
    stamps its own start: the job is then judged by how long *that* attempt runs, not by the dead one."""
    stale = (col(Job.status) == JobStatus.RUNNING, col(Job.started_at) < cutoff)
    ids = list(session.exec(select(Job.id).where(*stale).order_by(col(Job.started_at)).limit(SWEEP_LIMIT)).all())
    if not ids:
        return []
    # Compare-and-set: a job that finished (or was requeued by another sweeper) meanwhile is left alone.
    statement = (update(Job).where(col(Job.id).in_(ids), *stale)
                 .values(status=JobStatus.QUEUED, started_at=None)
                 .returning(col(Job.id), col(Job.priority)))
    return [(job_id, Priority(priority)) for job_id, priority in session.execute(statement).all()]


def stale_queued(session: Session, *, cutoff: datetime) -> list[tuple[str, Priority]]:
    rows = session.exec(
        select(Job.id, Job.priority)
        .where(col(Job.status) == JobStatus.QUEUED, col(Job.created_at) < cutoff,
               col(Job.cancel_requested).is_(False))
        .order_by(col(Job.priority_rank), col(Job.created_at)).limit(SWEEP_LIMIT)
    ).all()
    return [(job_id, Priority(priority)) for job_id, priority in rows]


def _send_grouped(jobs: Iterable[tuple[str, Priority]], send: Send, marks: Marks) -> int:
    """One message per priority and per MESSAGE_IDS ids. A message that cannot be sent has its marks removed,
    so the next sweep tries those jobs again (they are `queued`, so nothing else is needed)."""
    by_priority: dict[Priority, list[str]] = defaultdict(list)
    for job_id, priority in jobs:
        by_priority[priority].append(job_id)
    sent = 0
    for priority in Priority.by_urgency():
        ids = by_priority.get(priority, [])
        for start in range(0, len(ids), MESSAGE_IDS):
            chunk = ids[start:start + MESSAGE_IDS]
            try:
                send(chunk, priority)
                sent += 1
            except Exception as exc:  # the broker may be down: the jobs stay queued for the next sweep
                log.warning("sweeper: could not send %d job(s), next sweep retries: %s", len(chunk), exc)
                marks.delete(*(MARK_PREFIX + job_id for job_id in chunk))
    return sent
