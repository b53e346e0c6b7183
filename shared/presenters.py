"""Job rows → the contract's Job object. The input is never echoed back."""

from __future__ import annotations

from shared.models import Job
from shared.schemas import JobError, JobOut, JobResult
from shared.status import JobStatus, Priority


def job_out(job: Job, *, queue_position: int | None = None) -> JobOut:
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
        queue_position=queue_position if job.status == JobStatus.QUEUED else None,
        result=JobResult.model_validate(job.result) if job.result else None,
        error=JobError.model_validate(job.error) if job.error else None,
        data_removed=job.data_removed,
    )
