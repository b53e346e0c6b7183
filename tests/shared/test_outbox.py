"""The webhook outbox on every configured database: events recorded with terminal statuses, dispatch, leases,
the retry schedule, 410 and redelivery."""

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from shared import crud, outbox
from shared.db import session_scope
from shared.errors import InvalidTransition
from shared.keys import ensure_tenant
from shared.models import Job, WebhookDelivery, WebhookEvent, utcnow
from shared.status import JobStatus, Priority
from shared.worker_store import claim_jobs, store_results

DELAYS = (5.0, 300.0)


def _job(engine: Engine, *, events: list[str] | None = None, webhook: bool = True) -> Job:
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="a").id
        hook = crud.Webhook(url="https://hooks.example/in", events=events or []) if webhook else None
        (job,) = crud.create_jobs(s, tenant_id=tenant, model="m", model_version="1", explain=False,
                                  items=[crud.NewJob(input_kind="text", input_data=b"note")],
                                  priority=Priority.ROUTINE, max_queue_seconds=None, webhook=hook)
        return job


def _succeed(engine: Engine, job: Job) -> list[str]:
    with session_scope(engine) as s:
        claim_jobs(s, job_ids=[job.id], max_attempts=3)
        store_results(s, results={job.id: {"label": "x"}}, failures={})
        return outbox.record_events(s, job_ids=[job.id])


def test_a_terminal_job_gets_one_event_however_often_it_is_recorded(store_engine: Engine) -> None:
    job = _job(store_engine)
    with session_scope(store_engine) as s:
        assert outbox.record_events(s, job_ids=[job.id]) == []  # still queued: nothing to say yet
    (event_id,) = _succeed(store_engine, job)
    assert event_id.startswith("msg_")
    with session_scope(store_engine) as s:
        assert outbox.record_events(s, job_ids=[job.id]) == []
        event = s.get(WebhookEvent, event_id)
        assert event is not None and event.type == "job.succeeded" and event.status == "pending"


def test_jobs_without_webhook_or_with_a_filtered_event_get_none(store_engine: Engine) -> None:
    plain = _job(store_engine, webhook=False)
    only_failures = _job(store_engine, events=["job.failed"])
    assert _succeed(store_engine, plain) == []
    assert _succeed(store_engine, only_failures) == []


def test_canceling_a_queued_job_records_job_canceled(store_engine: Engine) -> None:
    job = _job(store_engine)
    with session_scope(store_engine) as s:
        crud.cancel_job(s, job=crud.get_job(s, tenant_id=job.tenant_id, job_id=job.id))
    with session_scope(store_engine) as s:
        types = s.exec(select(WebhookEvent.type).where(WebhookEvent.job_id == job.id)).all()
    assert list(types) == ["job.canceled"]


def test_due_events_are_dispatched_once_until_the_redispatch_delay(store_engine: Engine) -> None:
    (event_id,) = _succeed(store_engine, _job(store_engine))
    now = utcnow()
    with session_scope(store_engine) as s:
        assert outbox.claim_due(s, now=now, redispatch_after_s=60) == [event_id]
    with session_scope(store_engine) as s:
        assert outbox.claim_due(s, now=now + timedelta(seconds=1), redispatch_after_s=60) == []
    with session_scope(store_engine) as s:  # its message was lost: sent again after the delay
        assert outbox.claim_due(s, now=now + timedelta(seconds=61), redispatch_after_s=60) == [event_id]


def test_only_one_holder_of_the_lease(store_engine: Engine) -> None:
    (event_id,) = _succeed(store_engine, _job(store_engine))
    now = utcnow()
    with session_scope(store_engine) as s:
        assert outbox.take_lease(s, event_id=event_id, now=now, seconds=30) is not None
    with session_scope(store_engine) as s:
        assert outbox.take_lease(s, event_id=event_id, now=now, seconds=30) is None
    with session_scope(store_engine) as s:  # a holder that died: the lease runs out
        assert outbox.take_lease(s, event_id=event_id, now=now + timedelta(seconds=31), seconds=30) is not None


def _attempt(engine: Engine, event_id: str, outcome: outbox.Attempt) -> WebhookEvent:
    with session_scope(engine) as s:
        event = s.get(WebhookEvent, event_id)
        assert event is not None
        outbox.finish_attempt(s, event=event, outcome=outcome, now=utcnow(), delays=DELAYS, jitter=0.1)
    with session_scope(engine) as s:
        fresh = s.get(WebhookEvent, event_id)
        assert fresh is not None
        return fresh


def test_failures_follow_the_schedule_then_give_up(store_engine: Engine) -> None:
    (event_id,) = _succeed(store_engine, _job(store_engine))
    before = utcnow()
    first = _attempt(store_engine, event_id, outbox.Attempt(500, None, 3.0))
    assert first.status == "pending" and first.attempts == 1
    assert 4.5 <= (first.next_attempt_at - before).total_seconds() <= 5.6  # 5 s ± 10 % jitter
    second = _attempt(store_engine, event_id, outbox.Attempt(None, "ConnectError", 1.0))
    assert second.status == "pending" and (second.next_attempt_at - before).total_seconds() >= 270
    third = _attempt(store_engine, event_id, outbox.Attempt(503, None, 1.0))
    assert third.status == "failed" and third.attempts == 3
    with session_scope(store_engine) as s:
        rows = s.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).all()
    assert [(r.attempt, r.status_code, r.error) for r in rows] == [(1, 500, None), (2, None, "ConnectError"),
                                                                    (3, 503, None)]


@pytest.mark.parametrize(("outcome", "status"), [
    (outbox.Attempt(204, None, 1.0), "delivered"),
    (outbox.Attempt(410, None, 1.0), "stopped"),
    (outbox.Attempt(None, "refused: private address", 0.0, final=True), "failed"),
    (outbox.Attempt(302, None, 1.0), "pending"),  # a redirect is not success, and is not followed
])
def test_outcomes(store_engine: Engine, outcome: outbox.Attempt, status: str) -> None:
    (event_id,) = _succeed(store_engine, _job(store_engine))
    assert _attempt(store_engine, event_id, outcome).status == status


def test_retry_after_is_honoured_within_the_schedule(store_engine: Engine) -> None:
    (event_id,) = _succeed(store_engine, _job(store_engine))
    before = utcnow()
    event = _attempt(store_engine, event_id, outbox.Attempt(429, None, 1.0, retry_after_s=120))
    assert 119 <= (event.next_attempt_at - before).total_seconds() <= 125


def test_redeliver_requeues_the_last_event_with_the_same_id(store_engine: Engine) -> None:
    job = _job(store_engine)
    with session_scope(store_engine) as s, pytest.raises(InvalidTransition):
        outbox.redeliver(s, job=job, now=utcnow())  # not finished: nothing to send again
    (event_id,) = _succeed(store_engine, job)
    _attempt(store_engine, event_id, outbox.Attempt(200, None, 1.0))
    with session_scope(store_engine) as s:
        assert outbox.redeliver(s, job=job, now=utcnow()).id == event_id
    with session_scope(store_engine) as s:
        event = s.get(WebhookEvent, event_id)
        assert event is not None and (event.status, event.round_attempts, event.attempts) == ("pending", 0, 1)
        assert s.get(Job, job.id) is not None and JobStatus(s.get(Job, job.id).status).is_terminal  # type: ignore[union-attr]
