"""Worker-side job state changes. Each is a compare-and-set on status, so a message delivered twice (a worker
killed before its ack) runs at most once more and never stores a second result."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, update
from sqlmodel import Session, col, select

from shared.models import Job, utcnow
from shared.status import JobStatus


@dataclass(frozen=True)
class Claimant:
    """Who claims: the message's id (its own retries take back what it claimed, e.g. after a database outage) and
    after how long a running job is presumed to belong to a dead worker."""

    token: str | None = None
    stale_after_s: float = 0.0

    def may_take(self, now: datetime) -> Any:
        """Queued; or running, and either presumed dead or claimed by this same message."""
        stale = now - timedelta(seconds=self.stale_after_s)
        running_ours = [col(Job.claimed_by) == self.token] if self.token else []
        return or_(col(Job.status) == JobStatus.QUEUED,
                   and_(col(Job.status) == JobStatus.RUNNING,
                        or_(col(Job.started_at).is_(None), col(Job.started_at) <= stale, *running_ours)))

    def holds_elsewhere(self, job: Job, now: datetime) -> bool:
        """A running job another (live) message holds: a duplicate message must not run it twice."""
        fresh = job.started_at is not None and job.started_at > now - timedelta(seconds=self.stale_after_s)
        return job.status == JobStatus.RUNNING and fresh and (self.token is None or job.claimed_by != self.token)


@dataclass(frozen=True)
class Claimed:
    """What the worker needs of a job it claimed. Read as plain columns: loading whole ORM rows (every column,
    the result included) cost half again as much CPU per job, and a worker process is bound by its CPU per job."""

    id: str
    model: str
    status: str
    priority: str
    explain: bool
    attempts: int
    input_data: bytes | None
    input_media_type: str | None
    request_id: str | None
    created_at: datetime
    started_at: datetime | None


_CLAIMED = [getattr(Job.__table__.c, f.name) for f in fields(Claimed)]  # type: ignore[attr-defined]


def claim_jobs(session: Session, *, job_ids: list[str], max_attempts: int,
               claimant: Claimant = Claimant()) -> list[Claimed]:
    """Mark the runnable jobs among `job_ids` running and return them. Skips finished and canceled jobs and those
    another live message holds; expires overdue ones; fails a job already tried `max_attempts` times (a poison job
    that keeps killing its worker). The common case is a single UPDATE … RETURNING for the whole message."""
    now = utcnow()
    ordinary = [col(Job.cancel_requested).is_(False), col(Job.data_removed).is_(False),
                col(Job.attempts) < max_attempts, col(Job.max_queue_seconds).is_(None)]
    claimed = _mark_running(session, job_ids, claimant, claimant.may_take(now), *ordinary)
    rest = set(job_ids) - {job.id for job in claimed}
    return claimed + _claim_special(session, list(rest), max_attempts, claimant) if rest else claimed


def _mark_running(session: Session, job_ids: list[str], claimant: Claimant, *conditions: Any) -> list[Claimed]:
    # started_at is the latest start, so a re-run is not mistaken for a stale one straight away.
    table = Job.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id.in_(job_ids), *conditions)
        .values(status=JobStatus.RUNNING, attempts=table.c.attempts + 1, started_at=utcnow(),
                claimed_by=claimant.token)
        .returning(*_CLAIMED)
    )
    return [Claimed(**row._mapping) for row in session.connection().execute(statement)]


def _claim_special(session: Session, job_ids: list[str], max_attempts: int,
                   claimant: Claimant) -> list[Claimed]:
    """The jobs the fast path left: finished, canceled, held by a live worker, out of attempts, or with a queue
    deadline."""
    now = utcnow()
    runnable: list[str] = []
    for job in session.exec(select(Job).where(col(Job.id).in_(job_ids))).all():
        status = JobStatus(job.status)
        if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            continue
        if claimant.holds_elsewhere(job, now):
            continue
        if _overdue(job) and status == JobStatus.QUEUED:
            _set(session, job, expected=status, status=JobStatus.EXPIRED, finished_at=now)
        elif job.cancel_requested or job.data_removed:
            _set(session, job, expected=status, status=JobStatus.CANCELED, finished_at=now)
        elif job.attempts >= max_attempts:
            error = {"type": "too_many_attempts",
                     "detail": f"the job was started {job.attempts} times without finishing"}
            _set(session, job, expected=status, status=JobStatus.FAILED, error=error, finished_at=now)
        else:
            runnable.append(job.id)
    return _mark_running(session, runnable, claimant, claimant.may_take(now)) if runnable else []


def store_results(session: Session, *, results: dict[str, dict[str, Any]],
                  failures: dict[str, tuple[str, str]]) -> None:
    """Store many outcomes in a few statements, each only on a job still running; jobs whose cancel was asked
    for meanwhile are canceled instead."""
    now = utcnow()
    ids = [*results, *failures]
    if not ids:
        return
    session.exec(
        update(Job).where(col(Job.id).in_(ids), col(Job.status) == JobStatus.RUNNING,
                          or_(col(Job.cancel_requested), col(Job.data_removed)))
        .values(status=JobStatus.CANCELED, finished_at=now)
    )
    table = Job.__table__  # type: ignore[attr-defined]
    running = and_(table.c.id == bindparam("job_id"), table.c.status == JobStatus.RUNNING)
    conn = session.connection()
    if results:
        conn.execute(update(table).where(running).values(status=JobStatus.SUCCEEDED, finished_at=now,
                                                           result=bindparam("job_result")),
                     [{"job_id": k, "job_result": v} for k, v in results.items()])
    if failures:
        conn.execute(update(table).where(running).values(status=JobStatus.FAILED, finished_at=now,
                                                           error=bindparam("job_error")),
                     [{"job_id": k, "job_error": {"type": t, "detail": d}} for k, (t, d) in failures.items()])


def release_jobs(session: Session, *, job_ids: list[str]) -> None:
    """Hand running jobs back to the queue (the message will be retried)."""
    session.exec(
        update(Job).where(col(Job.id).in_(job_ids), col(Job.status) == JobStatus.RUNNING)
        .values(status=JobStatus.QUEUED)
    )


def _overdue(job: Job) -> bool:
    if job.max_queue_seconds is None:
        return False
    return utcnow() >= job.created_at + timedelta(seconds=job.max_queue_seconds)


def _set(session: Session, job: Job, *, expected: JobStatus, **values: Any) -> bool:
    result = session.exec(
        update(Job).where(col(Job.id) == job.id, col(Job.status) == expected).values(**values)
    )
    changed = bool(result.rowcount)
    if changed:
        for key, value in values.items():
            setattr(job, key, value)
    return changed
