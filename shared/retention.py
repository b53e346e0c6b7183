"""Retention: the data of finished jobs (input, result, explanation, patient reference) is purged after the
tenant's `retention_days`, leaving the row as an audit stub (id, status, times, `data_removed: true`), as
`DELETE /v1/jobs/{id}` does at once. Expired idempotency records go too."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from shared.crud import ERASED
from shared.models import IdempotencyRecord, Job, Tenant
from shared.status import JobStatus

TERMINAL = [s for s in JobStatus if s.is_terminal]


def purge_expired(session: Session, *, now: datetime, default_days: int, idempotency_hours: int) -> int:
    """Erase what has outlived its retention; returns how many jobs were purged."""
    purged = 0
    for tenant_id, days in session.exec(select(Tenant.id, Tenant.retention_days)).all():
        keep = default_days if days is None else days
        if keep <= 0:
            continue
        result = session.exec(
            update(Job)
            .where(col(Job.tenant_id) == tenant_id, col(Job.data_removed).is_(False),
                   col(Job.status).in_(TERMINAL), col(Job.finished_at) < now - timedelta(days=keep))
            .values(**ERASED)
        )
        purged += result.rowcount or 0
    session.exec(delete(IdempotencyRecord)
                 .where(col(IdempotencyRecord.created_at) < now - timedelta(hours=idempotency_hours)))
    return purged
