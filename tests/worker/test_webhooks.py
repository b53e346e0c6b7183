"""Delivering webhooks to a real HTTP receiver on 127.0.0.1: Standard Webhooks signatures, retries with one
`webhook-id`, 410, redirects, Retry-After, redelivery, secret rotation and the SSRF guard at delivery time."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from standardwebhooks import Webhook, WebhookVerificationError

from shared import crud, outbox
from shared.db import init_db, make_engine, session_scope
from shared.keys import ensure_tenant
from shared.models import Job, WebhookDelivery, WebhookEvent, WebhookSecret, utcnow
from shared.settings import Settings
from shared.status import Priority
from shared.webhook_secrets import current_secret, rotate
from shared.worker_store import claim_jobs, store_results
from tests.receiver import Receiver, Reply, running_receiver
from worker.webhooks import Delivery, deliver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def delivery(settings: Settings) -> Iterator[Delivery]:
    hooks = settings.model_copy(update={"webhook_allow": "127.0.0.1/32", "webhook_retry_schedule": "0,0,0",
                                        "webhook_timeout_s": 5.0})
    engine = make_engine(hooks.database_url)
    init_db(engine)
    yield Delivery(settings=hooks, engine=engine)
    engine.dispose()


def _finished_job(engine: Engine, url: str, *, label: str = "neoplasms",
                  result_format: str = "json") -> tuple[Job, str]:
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="alpha").id
        (job,) = crud.create_jobs(s, tenant_id=tenant, model="disease-category", model_version="1.0.0",
                                  items=[crud.NewJob(input_kind="text", input_data=b"note", external_id="ACC-7")],
                                  priority=Priority.STAT, max_queue_seconds=None, explain=False,
                                  webhook=crud.Webhook(url=url, events=[], result_format=result_format))
    with session_scope(engine) as s:
        claim_jobs(s, job_ids=[job.id], max_attempts=3)
        store_results(s, results={job.id: _result(label)}, failures={})
        (event_id,) = outbox.record_events(s, job_ids=[job.id])
    return job, event_id


def _result(label: str) -> dict[str, object]:
    return {"label": label, "scores": [{"label": label, "probability": 1.0}], "explanation": None,
            "model": "disease-category", "model_version": "1.0.0", "model_sha256": "0" * 64}


def _secret(engine: Engine, tenant_id: str) -> str:
    with session_scope(engine) as s:
        return current_secret(s, tenant_id=tenant_id).secret


def _make_due(engine: Engine, event_id: str) -> None:
    """Skip the back-off wait (the schedule is 0 s, but jitter and clocks are not the point here)."""
    with session_scope(engine) as s:
        s.exec(update(WebhookEvent).where(col(WebhookEvent.id) == event_id)
               .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_the_body_is_signed_and_verifies_with_standardwebhooks(delivery: Delivery, receiver: Receiver) -> None:
    job, event_id = _finished_job(delivery.engine, f"{receiver.url}/hooks/medq")
    assert deliver(event_id, delivery=delivery) == "delivered"
    (got,) = receiver.received
    assert got.path == "/hooks/medq" and got.headers["webhook-id"] == event_id
    payload = Webhook(_secret(delivery.engine, job.tenant_id)).verify(got.body, got.headers)
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job.id
    assert payload["data"]["result"]["label"] == "neoplasms" and "input" not in payload["data"]
    with pytest.raises(WebhookVerificationError):  # one byte changed: the signature no longer matches
        Webhook(_secret(delivery.engine, job.tenant_id)).verify(got.body.replace(b"neoplasms", b"neoplasmz"),
                                                                got.headers)


def test_500_500_200_is_delivered_on_the_third_attempt_with_one_id(delivery: Delivery, receiver: Receiver) -> None:
    receiver.script = [Reply(500), Reply(500), Reply(200)]
    _, event_id = _finished_job(delivery.engine, receiver.url)
    statuses = []
    for _ in range(3):
        _make_due(delivery.engine, event_id)
        statuses.append(deliver(event_id, delivery=delivery))
    assert statuses == ["pending", "pending", "delivered"]
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id} and len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1  # the same bytes on every retry
    with session_scope(delivery.engine) as s:
        rows = s.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).all()
    assert [(r.attempt, r.status_code) for r in rows] == [(1, 500), (2, 500), (3, 200)]
    assert deliver(event_id, delivery=delivery) is None  # delivered: a duplicate message sends nothing


def test_410_stops_and_a_redirect_is_not_followed(delivery: Delivery, receiver: Receiver) -> None:
    receiver.script = [Reply(302, {"location": f"{receiver.url}/elsewhere"}), Reply(410)]
    _, event_id = _finished_job(delivery.engine, receiver.url)
    assert deliver(event_id, delivery=delivery) == "pending"
    assert [r.path for r in receiver.received] == ["/"]  # /elsewhere never called
    _make_due(delivery.engine, event_id)
    assert deliver(event_id, delivery=delivery) == "stopped"
    _make_due(delivery.engine, event_id)
    assert deliver(event_id, delivery=delivery) is None and len(receiver.received) == 2


def test_retry_after_postpones_the_next_attempt(delivery: Delivery, receiver: Receiver) -> None:
    receiver.script = [Reply(429, {"retry-after": "2"})]
    _, event_id = _finished_job(delivery.engine, receiver.url)
    assert deliver(event_id, delivery=delivery) == "pending"
    assert deliver(event_id, delivery=delivery) is None  # not due yet
    with session_scope(delivery.engine) as s:
        event = s.get(WebhookEvent, event_id)
        assert event is not None and (event.next_attempt_at - utcnow()).total_seconds() > 1


def test_a_huge_answer_is_not_read_whole(delivery: Delivery, receiver: Receiver) -> None:
    receiver.script = [Reply(200, body=b"x" * 5_000_000)]
    _, event_id = _finished_job(delivery.engine, receiver.url)
    assert deliver(event_id, delivery=delivery) == "delivered"


def test_redelivery_keeps_the_webhook_id(delivery: Delivery, receiver: Receiver) -> None:
    job, event_id = _finished_job(delivery.engine, receiver.url)
    assert deliver(event_id, delivery=delivery) == "delivered"
    with session_scope(delivery.engine) as s:
        outbox.redeliver(s, job=job, now=utcnow())
    assert deliver(event_id, delivery=delivery) == "delivered"
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]
    with session_scope(delivery.engine) as s:
        assert [r.attempt for r in outbox.deliveries(s, job_id=job.id) for r in [r[0]]] == [1, 2]


def test_after_rotation_old_and_new_secrets_both_verify(delivery: Delivery, receiver: Receiver) -> None:
    job, event_id = _finished_job(delivery.engine, receiver.url)
    old = _secret(delivery.engine, job.tenant_id)
    with session_scope(delivery.engine) as s:
        new, _ = rotate(s, tenant_id=job.tenant_id, now=utcnow(), grace=timedelta(hours=24))
    assert deliver(event_id, delivery=delivery) == "delivered"
    (got,) = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new.secret):
        Webhook(secret).verify(got.body, got.headers)
    # Once the grace period is over only the new secret signs.
    with session_scope(delivery.engine) as s:
        s.exec(update(WebhookSecret).where(col(WebhookSecret.valid_until).is_not(None))
               .values(valid_until=utcnow() - timedelta(seconds=1)))
    job2, event2 = _finished_job(delivery.engine, receiver.url)
    assert job2.tenant_id == job.tenant_id and deliver(event2, delivery=delivery) == "delivered"
    latest = receiver.received[1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    Webhook(new.secret).verify(latest.body, latest.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(latest.body, latest.headers)


def test_the_guard_runs_again_at_delivery_time(delivery: Delivery, receiver: Receiver) -> None:
    _, event_id = _finished_job(delivery.engine, receiver.url)
    strict = Delivery(settings=delivery.settings.model_copy(update={"webhook_allow": ""}), engine=delivery.engine)
    assert deliver(event_id, delivery=strict) == "failed"  # 127.0.0.1 is no longer allowlisted
    assert receiver.received == []
    with session_scope(delivery.engine) as s:
        (row,) = s.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).all()
    assert row.status_code is None and row.error is not None and "loopback" in row.error


def test_an_unreachable_receiver_is_retried(delivery: Delivery) -> None:
    _, event_id = _finished_job(delivery.engine, "http://127.0.0.1:9/nothing-listens")
    assert deliver(event_id, delivery=delivery) == "pending"
    with session_scope(delivery.engine) as s:
        (row,) = s.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).all()
    assert row.status_code is None and row.error and "Connect" in row.error


def test_result_format_fhir_adds_the_risk_assessment_bundle(delivery: Delivery, receiver: Receiver) -> None:
    job, event_id = _finished_job(delivery.engine, receiver.url, result_format="fhir")
    assert deliver(event_id, delivery=delivery) == "delivered"
    payload = Webhook(_secret(delivery.engine, job.tenant_id)).verify(receiver.received[0].body,
                                                                      receiver.received[0].headers)
    assert payload["data"]["id"] == job.id and payload["fhir"]["resourceType"] == "Bundle"
    kinds = [entry["resource"]["resourceType"] for entry in payload["fhir"]["entry"]]
    assert "RiskAssessment" in kinds and "Provenance" in kinds
