"""estimated_start_at: queue position divided by the recent throughput measured from the database."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from shared import crud
from shared.db import session_scope
from shared.keys import ensure_tenant
from shared.models import Job, utcnow
from shared.presenters import estimated_start, job_out, recent_throughput
from shared.status import Priority


def _jobs(engine: Engine, n: int, priority: Priority = Priority.ROUTINE) -> list[str]:
    """`n` single jobs, one after the other (so each has its own queue position)."""
    ids = []
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="t")
        for _ in range(n):
            jobs = crud.create_jobs(s, tenant_id=tenant.id, model="m", model_version="1.0.0", priority=priority,
                                    items=[crud.NewJob(input_kind="text", input_data=b"x")],
                                    max_queue_seconds=None, explain=False)
            ids.append(jobs[0].id)
    return ids


def _finished(engine: Engine, ids: list[str], *, seconds_ago: float, status: str = "succeeded") -> None:
    at = utcnow() - timedelta(seconds=seconds_ago)
    with session_scope(engine) as s:
        s.exec(update(Job).where(col(Job.id).in_(ids))
               .values(status=status, started_at=at - timedelta(seconds=1), finished_at=at))


def test_no_recent_work_means_no_estimate(engine: Engine) -> None:
    queued = _jobs(engine, 3)
    _finished(engine, _jobs(engine, 5), seconds_ago=3600)  # too old to say anything about now
    with Session(engine) as s:
        assert recent_throughput(s) is None
        job = s.get(Job, queued[2])
        assert job is not None
        out = job_out(job, queue_position=crud.queue_position(s, job=job))
    assert out.queue_position == 2 and out.estimated_start_at is None


def test_the_estimate_is_position_over_recent_throughput(engine: Engine) -> None:
    queued = _jobs(engine, 30)
    _finished(engine, _jobs(engine, 20), seconds_ago=10)  # 20 jobs in the last ~10 s: about 2 per second
    _finished(engine, _jobs(engine, 4), seconds_ago=5, status="canceled")  # never ran: not throughput
    with Session(engine) as s:
        rate = recent_throughput(s)
        assert rate is not None and 1.5 < rate < 2.1
        job = s.get(Job, queued[20])
        assert job is not None
        before = utcnow()
        out = job_out(job, queue_position=crud.queue_position(s, job=job))
    assert out.queue_position == 20 and out.estimated_start_at is not None
    wait = (out.estimated_start_at - before).total_seconds()
    assert 20 / 2.1 - 1 < wait < 20 / 1.5 + 1  # 20 ahead at the measured rate, not the list's own timing


def test_running_and_finished_jobs_have_no_estimate() -> None:
    assert estimated_start(None, rate=2.0) is None
    assert estimated_start(4, rate=None) is None
    at = estimated_start(4, rate=2.0)
    assert at is not None and 1.5 < (at - utcnow()).total_seconds() <= 2.0


def test_the_api_shows_the_estimate_on_queued_jobs(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {"model": "disease-category", "input": {"text": "Crohn disease flare."}}
    job = client.post("/v1/jobs", json=body, headers=auth).get_json()
    assert "estimated_start_at" in job and job["estimated_start_at"] is None  # no throughput measured yet
