"""Webhooks end to end with real processes: the API under gunicorn, the inference worker, the webhook worker (its
dispatcher included), a private redis-server and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import update
from sqlmodel import col
from standardwebhooks import Webhook

from shared.db import make_engine, session_scope
from shared.localstack import LocalStack, local_stack
from shared.models import Job, utcnow
from shared.queues import WEBHOOK_QUEUE
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.integration

HOOK_ENV = {"MEDQ_WEBHOOK_ALLOW": "127.0.0.1/32", "MEDQ_WEBHOOK_RETRY_SCHEDULE": "1,1,1",
            "MEDQ_WEBHOOK_POLL_INTERVAL_S": "0.2", "MEDQ_WEBHOOK_REDISPATCH_AFTER_S": "2",
            "MEDQ_RETENTION_SWEEP_S": "1"}
NOTE = {"model": "disease-category", "input": {"text": "Progressive memory loss and gait apraxia."}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # A private Redis: this module kills workers and empties a queue, which must not touch other modules' stacks.
    with local_stack(tmp_path_factory.mktemp("hooks"), env=HOOK_ENV, webhooks=True) as running:
        yield running


def _submit(client: httpx.Client, receiver: Receiver, path: str) -> dict[str, Any]:
    body = {**NOTE, "webhook": {"url": f"{receiver.url}{path}"}}
    response = client.post("/v1/jobs", json=body, headers={"Prefer": "wait=30"})
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "succeeded"
    return job


def _deliveries(client: httpx.Client, job_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = client.get(f"/v1/jobs/{job_id}/deliveries").json()["deliveries"]
        if len(rows) >= count:
            break
        time.sleep(0.2)
    return rows


def _for(receiver: Receiver, path: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = [r for r in receiver.received if r.path == path]
        if len(got) >= count:
            return got
        time.sleep(0.1)
    return [r for r in receiver.received if r.path == path]


def test_a_finished_job_is_delivered_signed(stack: LocalStack, receiver: Receiver) -> None:
    with stack.client() as client:
        job = _submit(client, receiver, "/first")
        (got,) = _for(receiver, "/first", 1)
        secret = client.get("/v1/webhook-secret").json()["secret"]
        payload = Webhook(secret).verify(got.body, got.headers)
        assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job["id"]
        assert payload["data"]["result"]["label"] == job["result"]["label"]
        (row,) = _deliveries(client, job["id"], 1)
        assert row["status_code"] == 200 and row["webhook_id"] == got.headers["webhook-id"]


def test_failed_attempts_are_retried_by_the_dispatcher_with_one_id(stack: LocalStack, receiver: Receiver) -> None:
    receiver.script.extend([Reply(500), Reply(500)])  # then the default 200
    with stack.client() as client:
        job = _submit(client, receiver, "/flaky")
        got = _for(receiver, "/flaky", 3)
        rows = _deliveries(client, job["id"], 3)
    assert [r["status_code"] for r in rows] == [500, 500, 200] and [r["attempt"] for r in rows] == [1, 2, 3]
    assert len({r.headers["webhook-id"] for r in got}) == 1 and len(got) == 3


def test_a_result_stored_before_a_crash_is_still_delivered(stack: LocalStack, receiver: Receiver) -> None:
    """The worker is killed after storing a result, and the delivery message it sent is lost with it: the
    dispatcher of a webhook worker started afterwards finds the event in the outbox and delivers it."""
    stack.stop("webhooks")  # nothing delivers while the "crash" happens
    with stack.client() as client:
        job = _submit(client, receiver, "/after-crash")
        stack.kill("worker")
        redis.Redis.from_url(stack.env["MEDQ_REDIS_URL"]).delete(WEBHOOK_QUEUE)
        assert receiver_paths(receiver).count("/after-crash") == 0
        stack.start_worker()
        stack.start_webhook_worker()
        (got,) = _for(receiver, "/after-crash", 1)
        assert Webhook(client.get("/v1/webhook-secret").json()["secret"]).verify(got.body, got.headers)
        assert [r["status_code"] for r in _deliveries(client, job["id"], 1)] == [200]


def receiver_paths(receiver: Receiver) -> list[str]:
    return [r.path for r in receiver.received]


def test_the_beat_purges_data_past_retention(stack: LocalStack) -> None:
    """The webhook worker's embedded beat runs the retention purge: a job that finished 31 days ago (default
    retention 30) loses its data and keeps its stub."""
    with stack.client() as client:
        job = client.post("/v1/jobs", json=NOTE, headers={"Prefer": "wait=30"}).json()
        assert job["status"] == "succeeded"
        engine = make_engine(stack.env["MEDQ_DATABASE_URL"])
        with session_scope(engine) as session:
            session.exec(update(Job).where(col(Job.id) == job["id"])
                         .values(finished_at=utcnow() - timedelta(days=31)))
        engine.dispose()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = client.get(f"/v1/jobs/{job['id']}").json()
            if seen["data_removed"]:
                break
            time.sleep(0.5)
    assert seen["data_removed"] and seen["result"] is None and seen["status"] == "succeeded"


def test_the_request_id_follows_the_job_to_the_worker_and_the_webhook(stack: LocalStack, receiver: Receiver) -> None:
    with stack.client() as client:
        body = {**NOTE, "webhook": {"url": f"{receiver.url}/traced"}}
        response = client.post("/v1/jobs", json=body, headers={"Prefer": "wait=30", "X-Request-ID": "ehr-trace-7731"})
        assert response.headers["X-Request-ID"] == "ehr-trace-7731" and response.json()["status"] == "succeeded"
        (got,) = _for(receiver, "/traced", 1)
    assert got.headers["x-request-id"] == "ehr-trace-7731"
    time.sleep(1)  # let the processes flush their last lines
    for name in ("api", "worker", "webhooks"):
        lines = [json.loads(line) for line in (stack.logs / f"{name}.log").read_text().splitlines()
                 if line.startswith("{")]
        assert any(entry.get("request_id") == "ehr-trace-7731" for entry in lines), name
