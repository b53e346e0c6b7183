"""Store behaviour on every configured database (SQLite, and Postgres when MEDQ_TEST_POSTGRES_URL is set)."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidRequestError
from sqlmodel import Session

from shared import crud, idempotency
from shared.db import session_scope
from shared.errors import IdempotencyConflict, InvalidTransition, NotFound
from shared.keys import authenticate, create_api_key, ensure_tenant
from shared.models import Job, utcnow
from shared.status import JobStatus, Priority
from shared.worker_store import claim_jobs, release_jobs, store_results


def _tenant(engine: Engine, name: str) -> str:
    with session_scope(engine) as s:
        return ensure_tenant(s, name=name).id


def _jobs(engine: Engine, tenant: str, n: int = 1, *, priority: Priority = Priority.ROUTINE,
          external_id: str | None = None, max_queue_seconds: int | None = None) -> list[Job]:
    items = [crud.NewJob(input_kind="text", input_data=f"note {i}".encode(), external_id=external_id)
             for i in range(n)]
    with session_scope(engine) as s:
        return crud.create_jobs(s, tenant_id=tenant, model="m", model_version="1.0.0", items=items,
                                priority=priority, max_queue_seconds=max_queue_seconds, explain=False)


def test_created_jobs_come_back_in_item_order_with_every_default(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    items = [crud.NewJob(input_kind="text", input_data=f"note {i}".encode(), external_id=f"E{i}") for i in range(40)]
    hook = crud.Webhook(url="https://ehr.example/hook", events=["job.succeeded"], result_format="fhir")
    with session_scope(store_engine) as s:
        jobs = crud.create_jobs(s, tenant_id=a, model="m", model_version="1.0.0", items=items,
                                priority=Priority.STAT, max_queue_seconds=30, explain=True, webhook=hook,
                                request_id="req-1")
    assert [j.external_id for j in jobs] == [f"E{i}" for i in range(40)]
    assert len({j.id for j in jobs}) == 40
    with session_scope(store_engine) as s:
        stored = crud.get_jobs(s, tenant_id=a, job_ids=[j.id for j in jobs])
    with session_scope(store_engine) as s:  # the worker's view: the API's reads leave the input out
        inputs = [s.get(Job, j.id).input_data for j in jobs]  # type: ignore[union-attr]
    assert inputs == [f"note {i}".encode() for i in range(40)]
    for job in stored:
        assert job.status == JobStatus.QUEUED
        assert (job.priority, job.priority_rank, job.explain, job.max_queue_seconds) == ("stat", 0, True, 30)
        assert (job.webhook_url, job.webhook_events, job.result_format) == (hook.url, hook.events, "fhir")
        assert (job.attempts, job.cancel_requested, job.data_removed, job.result, job.started_at) == (
            0, False, False, None, None)
        assert job.request_id == "req-1" and job.created_at.tzinfo is not None


def test_the_api_reads_jobs_without_their_input(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a)
    with session_scope(store_engine) as s:
        for read in (crud.get_job(s, tenant_id=a, job_id=job.id), crud.get_jobs(s, tenant_id=a, job_ids=[job.id])[0],
                     crud.list_jobs(s, tenant_id=a)[0][0]):
            with pytest.raises(InvalidRequestError):
                _ = read.input_data  # the API never needs it: reading it is a bug, not a lazy load


def test_another_tenants_job_is_not_found(store_engine: Engine) -> None:
    a, b = _tenant(store_engine, "a"), _tenant(store_engine, "b")
    (job,) = _jobs(store_engine, a)
    with session_scope(store_engine) as s:
        assert crud.get_job(s, tenant_id=a, job_id=job.id).id == job.id
        with pytest.raises(NotFound):
            crud.get_job(s, tenant_id=b, job_id=job.id)
        assert crud.list_jobs(s, tenant_id=b)[0] == []


def test_list_is_newest_first_and_paginates_without_gaps(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    created = [j.id for j in _jobs(store_engine, a, 3)] + [j.id for j in _jobs(store_engine, a, 4)]
    seen: list[str] = []
    cursor = None
    with session_scope(store_engine) as s:
        while True:
            page, cursor = crud.list_jobs(s, tenant_id=a, limit=3, cursor=cursor)
            seen += [j.id for j in page]
            if cursor is None:
                break
    assert sorted(seen) == sorted(created) and len(seen) == len(set(seen)) == 7
    assert set(seen[:4]) == set(created[3:])  # the later batch comes first


def test_filters_by_status_model_and_external_id(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    _jobs(store_engine, a, 2, external_id="ACC-1")
    (other,) = _jobs(store_engine, a, 1, external_id="ACC-2")
    with session_scope(store_engine) as s:
        assert len(crud.list_jobs(s, tenant_id=a, external_id="ACC-1")[0]) == 2
        crud.cancel_job(s, job=crud.get_job(s, tenant_id=a, job_id=other.id))
        canceled, _ = crud.list_jobs(s, tenant_id=a, status=JobStatus.CANCELED)
        assert [j.id for j in canceled] == [other.id]
        assert crud.list_jobs(s, tenant_id=a, model="nope")[0] == []


def test_queue_position_counts_more_urgent_and_older_jobs(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    routine = _jobs(store_engine, a, 3)
    (stat,) = _jobs(store_engine, a, 1, priority=Priority.STAT)
    with session_scope(store_engine) as s:
        assert crud.queue_position(s, job=stat) == 0
        positions = [crud.queue_position(s, job=j) for j in routine]
    assert sorted(positions) == [1, 1, 1] or sorted(positions) == [1, 2, 3]  # same-instant rows tie


def test_cancel_queued_is_immediate_and_terminal_is_a_conflict(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a)
    with session_scope(store_engine) as s:
        crud.cancel_job(s, job=job)
        assert job.status == JobStatus.CANCELED and job.finished_at is not None and job.started_at is None
        with pytest.raises(InvalidTransition):
            crud.cancel_job(s, job=job)


def test_cancel_running_is_applied_at_the_batch_boundary(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a)
    with session_scope(store_engine) as s:
        claim_jobs(s, job_ids=[job.id], max_attempts=3)
    with session_scope(store_engine) as s:
        crud.cancel_job(s, job=crud.get_job(s, tenant_id=a, job_id=job.id))
    with session_scope(store_engine) as s:
        store_results(s, results={job.id: {"label": "x"}}, failures={})
        final = crud.get_job(s, tenant_id=a, job_id=job.id)
    assert final.status == JobStatus.CANCELED and final.result is None


def test_erase_removes_data_and_keeps_the_stub(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a)
    with session_scope(store_engine) as s:
        crud.erase_job(s, job=crud.get_job(s, tenant_id=a, job_id=job.id))
    with Session(store_engine) as s:
        row = s.get(Job, job.id)
        assert row is not None
        assert row.input_data is None and row.data_removed and row.status == JobStatus.CANCELED


def test_a_result_is_stored_once_even_if_the_message_comes_twice(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a)
    with session_scope(store_engine) as s:
        claimed = claim_jobs(s, job_ids=[job.id], max_attempts=3)
        assert [j.id for j in claimed] == [job.id] and claimed[0].status == "running" and claimed[0].attempts == 1
        store_results(s, results={job.id: {"label": "first"}}, failures={})
    with session_scope(store_engine) as s:
        assert claim_jobs(s, job_ids=[job.id], max_attempts=3) == []  # finished: nothing to run
        store_results(s, results={job.id: {"label": "second"}}, failures={job.id: ("x", "y")})
        final = crud.get_job(s, tenant_id=a, job_id=job.id)
    assert final.status == JobStatus.SUCCEEDED and final.result == {"label": "first"} and final.error is None


def test_bulk_store_mixes_results_failures_and_cancels(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    ok, bad, cancel = (j.id for j in _jobs(store_engine, a, 3))
    with session_scope(store_engine) as s:
        assert len(claim_jobs(s, job_ids=[ok, bad, cancel], max_attempts=3)) == 3
    with session_scope(store_engine) as s:
        crud.cancel_job(s, job=crud.get_job(s, tenant_id=a, job_id=cancel))
    with session_scope(store_engine) as s:
        store_results(s, results={ok: {"label": "y"}, cancel: {"label": "z"}}, failures={bad: ("invalid_input", "no")})
    with session_scope(store_engine) as s:
        got = {i: crud.get_job(s, tenant_id=a, job_id=i) for i in (ok, bad, cancel)}
    assert got[ok].status == JobStatus.SUCCEEDED and got[ok].result == {"label": "y"} and got[ok].finished_at
    assert got[bad].status == JobStatus.FAILED and got[bad].error == {"type": "invalid_input", "detail": "no"}
    assert got[cancel].status == JobStatus.CANCELED and got[cancel].result is None


def test_poison_job_fails_after_max_attempts(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a)
    for _ in range(2):
        with session_scope(store_engine) as s:
            assert claim_jobs(s, job_ids=[job.id], max_attempts=2)
            release_jobs(s, job_ids=[job.id])
    with session_scope(store_engine) as s:
        assert claim_jobs(s, job_ids=[job.id], max_attempts=2) == []
        final = crud.get_job(s, tenant_id=a, job_id=job.id)
    assert final.status == JobStatus.FAILED and final.error and final.error["type"] == "too_many_attempts"


def test_overdue_queued_job_expires_and_never_runs(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a, max_queue_seconds=60)
    with session_scope(store_engine) as s:
        s.exec(update(Job).where(Job.id == job.id).values(created_at=utcnow() - timedelta(seconds=61)))  # type: ignore[arg-type]
    with session_scope(store_engine) as s:
        assert claim_jobs(s, job_ids=[job.id], max_attempts=3) == []
        final = crud.get_job(s, tenant_id=a, job_id=job.id)
    assert final.status == JobStatus.EXPIRED and final.started_at is None and final.finished_at


def test_idempotency_same_body_replays_other_body_conflicts(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    body = {"model": "m", "input": {"text": "x"}}
    digest = idempotency.request_hash(body)
    with session_scope(store_engine) as s:
        assert idempotency.lookup(s, tenant_id=a, key="k", body_hash=digest, is_batch=False, ttl_hours=24) is None
        idempotency.remember(s, tenant_id=a, key="k", body_hash=digest, is_batch=False, job_ids=["j1"])
    with session_scope(store_engine) as s:
        same = idempotency.request_hash({"input": {"text": "x"}, "model": "m"})
        assert idempotency.lookup(s, tenant_id=a, key="k", body_hash=same, is_batch=False, ttl_hours=24) == ["j1"]
        with pytest.raises(IdempotencyConflict):
            idempotency.lookup(s, tenant_id=a, key="k", body_hash="0" * 64, is_batch=False, ttl_hours=24)


def test_keys_authenticate_until_revoked_or_expired(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    with session_scope(store_engine) as s:
        key, raw = create_api_key(s, tenant_id=a)
        _, old = create_api_key(s, tenant_id=a, expires_at=utcnow() - timedelta(seconds=1))
    with session_scope(store_engine) as s:
        who = authenticate(s, raw_key=raw)
        assert who is not None and who.tenant_id == a and who.key_id == key.id
        assert authenticate(s, raw_key=old) is None
        assert authenticate(s, raw_key=raw + "x") is None
        key.revoked_at = utcnow()
        s.add(key)
    with session_scope(store_engine) as s:
        assert authenticate(s, raw_key=raw) is None
    assert key.key_hash != raw and raw not in key.prefix + key.key_hash


def test_batch_queue_positions_follow_submission_order(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (first,) = _jobs(store_engine, a)
    batch = _jobs(store_engine, a, 4)
    with session_scope(store_engine) as s:
        crud.cancel_job(s, job=first)
        positions = crud.queue_positions(s, jobs=[first, *batch])
    assert positions[first.id] is None
    assert [positions[j.id] for j in batch] == [0, 1, 2, 3]


def test_a_job_with_a_queue_deadline_not_yet_reached_is_claimed(store_engine: Engine) -> None:
    a = _tenant(store_engine, "a")
    (job,) = _jobs(store_engine, a, max_queue_seconds=600)
    with session_scope(store_engine) as s:
        claimed = claim_jobs(s, job_ids=[job.id], max_attempts=3)
    assert [j.id for j in claimed] == [job.id] and claimed[0].status == JobStatus.RUNNING
