"""The sweeper's functions on each configured database (SQLite; Postgres when MEDQ_TEST_POSTGRES_URL is set):
stale running jobs go back to the queue once, stale queued jobs are re-sent at most once per period, and a
duplicate message never gives a job a second result."""

from __future__ import annotations

from datetime import timedelta

import fakeredis
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared import crud
from shared.db import session_scope
from shared.keys import ensure_tenant
from shared.models import Job, utcnow
from shared.status import JobStatus, Priority
from shared.worker_store import Claimant, claim_jobs, store_results
from tests.reliability.conftest import statuses
from worker.sweeper import MESSAGE_IDS, sweep

Sent = list[tuple[list[str], Priority]]


def _jobs(engine: Engine, count: int, priority: Priority = Priority.ROUTINE) -> list[str]:
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="t")
        items = [crud.NewJob(input_kind="text", input_data=b"note") for _ in range(count)]
        jobs = crud.create_jobs(s, tenant_id=tenant.id, model="m", model_version="1.0.0", items=items,
                                priority=priority, max_queue_seconds=None, explain=False)
        return [j.id for j in jobs]


def _age(engine: Engine, ids: list[str], *, seconds: float, started: bool = False) -> None:
    """Pretend the jobs were created (and started) `seconds` ago."""
    then = utcnow() - timedelta(seconds=seconds)
    values = {"created_at": then, **({"started_at": then} if started else {})}
    with session_scope(engine) as s:
        s.exec(update(Job).where(col(Job.id).in_(ids)).values(**values))


def _claim(engine: Engine, ids: list[str], stale_after_s: float = 300) -> list[str]:
    with session_scope(engine) as s:
        claimant = Claimant(stale_after_s=stale_after_s)
        return [job.id for job in claim_jobs(s, job_ids=ids, max_attempts=3, claimant=claimant)]


def _sweep(engine: Engine, marks: fakeredis.FakeRedis, sent: Sent) -> tuple[list[str], list[str]]:
    report = sweep(engine, running_after_s=300, queued_after_s=900, marks=marks,
                   send=lambda ids, priority: sent.append((ids, priority)))
    return report.requeued_running, report.resent_queued


def test_a_dead_workers_running_jobs_are_requeued_once(store_engine: Engine) -> None:
    ids = _jobs(store_engine, 3, Priority.URGENT)
    assert sorted(_claim(store_engine, ids)) == sorted(ids)
    _age(store_engine, ids[:2], seconds=600, started=True)  # ids[2] started just now: a live batch
    sent: Sent = []
    marks = fakeredis.FakeRedis()
    requeued, resent = _sweep(store_engine, marks, sent)
    assert sorted(requeued) == sorted(ids[:2]) and resent == []
    assert sent == [(requeued, Priority.URGENT)]
    rows = statuses(store_engine, ids)
    assert [rows[i].status for i in ids] == ["queued", "queued", "running"]
    assert rows[ids[0]].started_at is None  # the next claim stamps its own start
    # Marked as re-sent: the next sweep neither requeues nor re-sends them although their created_at is old.
    assert _sweep(store_engine, marks, sent) == ([], []) and len(sent) == 1


def test_a_lost_message_is_resent_at_most_once_per_period(store_engine: Engine) -> None:
    old = _jobs(store_engine, MESSAGE_IDS + 4)
    young = _jobs(store_engine, 2)
    stat = _jobs(store_engine, 1, Priority.STAT)
    _age(store_engine, old + stat, seconds=1000)
    sent: Sent = []
    marks = fakeredis.FakeRedis()
    requeued, resent = _sweep(store_engine, marks, sent)
    assert requeued == [] and sorted(resent) == sorted(old + stat)
    assert [(len(ids), p) for ids, p in sent] == [(1, Priority.STAT), (MESSAGE_IDS, Priority.ROUTINE),
                                                  (4, Priority.ROUTINE)]
    assert not set(young) & {i for ids, _ in sent for i in ids}
    assert _sweep(store_engine, marks, sent) == ([], [])  # remembered for queued_after_s
    marks.flushall()  # the period has passed
    assert sorted(_sweep(store_engine, marks, sent)[1]) == sorted(old + stat)


def test_a_message_that_cannot_be_sent_is_tried_again_next_sweep(store_engine: Engine) -> None:
    ids = _jobs(store_engine, 2)
    _age(store_engine, ids, seconds=1000)
    marks = fakeredis.FakeRedis()

    def broker_down(_ids: list[str], _priority: Priority) -> None:
        raise ConnectionError("broker down")

    report = sweep(store_engine, running_after_s=300, queued_after_s=900, marks=marks, send=broker_down)
    assert report.messages == 0
    sent: Sent = []
    assert sorted(_sweep(store_engine, marks, sent)[1]) == sorted(ids)


def test_a_duplicate_message_does_not_run_a_live_job_again(store_engine: Engine) -> None:
    (job_id,) = _jobs(store_engine, 1)
    assert _claim(store_engine, [job_id]) == [job_id]
    assert _claim(store_engine, [job_id]) == []  # the sweeper's duplicate, while the first still runs
    _age(store_engine, [job_id], seconds=600, started=True)
    assert _claim(store_engine, [job_id]) == [job_id]  # a redelivery long after: its worker is presumed dead
    job = statuses(store_engine, [job_id])[job_id]
    assert job.attempts == 2 and job.status == JobStatus.RUNNING


def test_duplicate_messages_store_one_result(store_engine: Engine) -> None:
    """Two claims of one job (stale threshold 0: both run); only the first result is kept."""
    (job_id,) = _jobs(store_engine, 1)
    assert _claim(store_engine, [job_id], stale_after_s=0) == [job_id]
    assert _claim(store_engine, [job_id], stale_after_s=0) == [job_id]  # the duplicate, while the first still runs
    with session_scope(store_engine) as s:
        store_results(s, results={job_id: {"label": "first"}}, failures={})
    with session_scope(store_engine) as s:
        store_results(s, results={job_id: {"label": "second"}}, failures={})
        store_results(s, results={}, failures={job_id: ("prediction_failed", "late failure")})
    assert _claim(store_engine, [job_id]) == []  # a third copy finds it finished
    job = statuses(store_engine, [job_id])[job_id]
    assert job.status == JobStatus.SUCCEEDED and job.result == {"label": "first"} and job.error is None


def test_a_finished_job_is_never_requeued(store_engine: Engine) -> None:
    ids = _jobs(store_engine, 2)
    _claim(store_engine, ids)
    _age(store_engine, ids, seconds=600, started=True)
    with session_scope(store_engine) as s:
        store_results(s, results={ids[0]: {"label": "x"}}, failures={})
    requeued, _ = _sweep(store_engine, fakeredis.FakeRedis(), [])
    assert requeued == [ids[1]]
    assert statuses(store_engine, ids)[ids[0]].status == JobStatus.SUCCEEDED


def test_only_the_message_that_claimed_a_running_job_takes_it_back(store_engine: Engine) -> None:
    """A database outage leaves a message's jobs running; its retry (same task id) takes them back, while another
    message (the sweeper's re-send of a long-queued job, say) leaves them alone."""
    (job_id,) = _jobs(store_engine, 1)

    def claim(token: str) -> list[str]:
        with session_scope(store_engine) as s:
            claimant = Claimant(token=token, stale_after_s=300)
            return [job.id for job in claim_jobs(s, job_ids=[job_id], max_attempts=3, claimant=claimant)]

    assert claim("message-1") == [job_id]
    assert claim("message-2") == []
    assert claim("message-1") == [job_id]
    assert statuses(store_engine, [job_id])[job_id].attempts == 2
