"""Worker-side job state changes. Each is a compare-and-set on status, so a message delivered twice (a worker
killed before its ack) runs at most once more and never stores a second result."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from shared.models import Job, utcnow
from shared.status import JobStatus


def claim_jobs(session: Session, *, job_ids: list[str], max_attempts: int) -> list[Job]:
    """Mark the runnable jobs among `job_ids` running and return them. Skips finished and canceled jobs,
    expires overdue ones, and fails a job that has already been tried `max_attempts` times (a poison job that
    keeps killing its worker)."""
    now = utcnow()
    claimed: list[Job] = []
    for job in session.exec(select(Job).where(col(Job.id).in_(job_ids))).all():
        status = JobStatus(job.status)
        if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            continue
        if _overdue(job) and status == JobStatus.QUEUED:
            _set(session, job, expected=status, status=JobStatus.EXPIRED, finished_at=now)
            continue
        if job.cancel_requested or job.data_removed:
            _set(session, job, expected=status, status=JobStatus.CANCELED, finished_at=now)
            continue
        if job.attempts >= max_attempts:
            error = {"type": "too_many_attempts",
                     "detail": f"the job was started {job.attempts} times without finishing"}
            _set(session, job, expected=status, status=JobStatus.FAILED, error=error, finished_at=now)
            continue
        if _set(session, job, expected=status, status=JobStatus.RUNNING, attempts=job.attempts + 1,
                started_at=job.started_at or now):
            claimed.append(job)
    return claimed


def store_success(session: Session, *, job_id: str, result: dict[str, Any]) -> bool:
    """Store a result once. A job whose cancel was asked for meanwhile is canceled instead."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.RUNNING:
        return False
    if job.cancel_requested or job.data_removed:
        return _set(session, job, expected=JobStatus.RUNNING, status=JobStatus.CANCELED, finished_at=utcnow())
    return _set(session, job, expected=JobStatus.RUNNING, status=JobStatus.SUCCEEDED, result=result,
                finished_at=utcnow())


def store_failure(session: Session, *, job_id: str, error_type: str, detail: str) -> bool:
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.RUNNING:
        return False
    return _set(session, job, expected=JobStatus.RUNNING, status=JobStatus.FAILED,
                error={"type": error_type, "detail": detail}, finished_at=utcnow())


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
