"""Retention on every configured database: finished jobs past their tenant's retention lose their data and keep
an audit stub; recent, unfinished and keep-forever tenants' jobs are untouched."""

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared import crud
from shared.db import session_scope
from shared.keys import ensure_tenant
from shared.models import Job, Tenant, utcnow
from shared.presenters import job_out
from shared.retention import purge_expired
from shared.status import Priority
from shared.worker_store import claim_jobs, store_results


def _finished(engine: Engine, tenant: str, *, days_ago: float, finish: bool = True) -> str:
    with session_scope(engine) as s:
        (job,) = crud.create_jobs(s, tenant_id=tenant, model="m", model_version="1", explain=False,
                                  items=[crud.NewJob(input_kind="text", input_data=b"note",
                                                     subject={"reference": "Patient/1"})],
                                  priority=Priority.ROUTINE, max_queue_seconds=None)
    with session_scope(engine) as s:
        claim_jobs(s, job_ids=[job.id], max_attempts=3)
        if finish:
            store_results(s, results={job.id: {"label": "x"}}, failures={})
            s.exec(update(Job).where(col(Job.id) == job.id)
                   .values(finished_at=utcnow() - timedelta(days=days_ago)))
    return job.id


def test_purge_erases_old_data_and_keeps_the_stub(store_engine: Engine) -> None:
    with session_scope(store_engine) as s:
        short = ensure_tenant(s, name="short")
        short.retention_days = 7
        s.add(short)
        forever = ensure_tenant(s, name="forever")
        forever.retention_days = 0
        s.add(forever)
        default = ensure_tenant(s, name="default")
        ids = (short.id, forever.id, default.id)
    old = _finished(store_engine, ids[0], days_ago=8)
    recent = _finished(store_engine, ids[0], days_ago=6)
    running = _finished(store_engine, ids[0], days_ago=0, finish=False)
    kept = _finished(store_engine, ids[1], days_ago=400)
    by_default = _finished(store_engine, ids[2], days_ago=31)
    with session_scope(store_engine) as s:
        assert purge_expired(s, now=utcnow(), default_days=30, idempotency_hours=24) == 2
    with session_scope(store_engine) as s:
        jobs = {i: s.get(Job, i) for i in (old, recent, running, kept, by_default)}
    for purged in (old, by_default):
        job = jobs[purged]
        assert job is not None and job.data_removed and job.input_data is None and job.result is None
        assert job.subject is None and job.status == "succeeded" and job.finished_at is not None
        assert job_out(job).data_removed and job_out(job).result is None
    for untouched in (recent, running, kept):
        job = jobs[untouched]
        assert job is not None and not job.data_removed and job.input_data == b"note"
    with session_scope(store_engine) as s:
        assert purge_expired(s, now=utcnow(), default_days=30, idempotency_hours=24) == 0  # idempotent
        assert s.get(Tenant, ids[1]) is not None
