"""Job rows → the contract's Job object. The input is never echoed back.

`estimated_start_at` (an extension) is `now + queue_position / throughput`, where throughput is the number of
jobs that finished (succeeded or failed after starting) in the last `WINDOW_S` seconds divided by the time since
the first of them finished. It is measured per database, cached for `CACHE_S` seconds, and refreshed by
`crud.queue_position` — which every view calls before presenting a queued job — through `note_throughput`.
Fewer than `MIN_FINISHED` recent jobs means no estimate (null)."""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from shared.models import Job, utcnow
from shared.schemas import JobError, JobOut, JobResult
from shared.status import JobStatus, Priority

WINDOW_S = 300.0
CACHE_S = 5.0
MIN_FINISHED = 2

# The rate measured for the database of the request being served (None: no recent data).
_current_rate: ContextVar[float | None] = ContextVar("medq_throughput", default=None)
_cache: dict[str, tuple[float, float | None]] = {}  # database URL → (monotonic time measured, jobs per second)
_cache_lock = threading.Lock()


def job_out(job: Job, *, queue_position: int | None = None) -> JobOut:
    queued = job.status == JobStatus.QUEUED
    return JobOut(
        id=job.id,
        status=JobStatus(job.status),
        model=job.model,
        model_version=job.model_version,
        external_id=job.external_id,
        priority=Priority(job.priority),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        queue_position=queue_position if queued else None,
        estimated_start_at=estimated_start(queue_position, rate=_current_rate.get()) if queued else None,
        result=JobResult.model_validate(job.result) if job.result else None,
        error=JobError.model_validate(job.error) if job.error else None,
        data_removed=job.data_removed,
    )


def estimated_start(queue_position: int | None, *, rate: float | None) -> datetime | None:
    """When a job with `queue_position` jobs ahead of it should start, at `rate` jobs per second."""
    if queue_position is None or rate is None or rate <= 0:
        return None
    return utcnow() + timedelta(seconds=queue_position / rate)


def note_throughput(session: Session) -> float | None:
    """Measure (or reuse a measurement younger than CACHE_S of) this database's recent throughput and make it
    the one `job_out` uses in this context."""
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and now - cached[0] < CACHE_S:
        rate = cached[1]
    else:
        rate = recent_throughput(session)
        with _cache_lock:
            _cache[key] = (now, rate)
    _current_rate.set(rate)
    return rate


def recent_throughput(session: Session, *, window_s: float = WINDOW_S) -> float | None:
    """Jobs per second finished over the last `window_s` seconds; None with fewer than MIN_FINISHED."""
    now = utcnow()
    since = now - timedelta(seconds=window_s)
    finished = col(Job.finished_at)
    query = select(func.count(), func.min(finished)).select_from(Job).where(
        finished >= since, col(Job.started_at).is_not(None),
        col(Job.status).in_([JobStatus.SUCCEEDED, JobStatus.FAILED]),
    )
    count, first = session.exec(query).one()
    if count < MIN_FINISHED or first is None:
        return None
    # Counting from the first finish (not the window start) keeps a service that just started from looking slow;
    # counting up to now (not the last finish) makes a stalled worker's rate decay instead of staying high.
    first_at = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
    elapsed = max((now - first_at).total_seconds(), 1.0)
    return float(count) / elapsed
