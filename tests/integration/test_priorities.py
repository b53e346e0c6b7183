"""Priorities on real processes: a stat job queued behind 200 routine jobs overtakes them, a job past its
max_queue_seconds never runs, and queued jobs get an estimated start once throughput has been measured.

The worker starts only after everything is queued, so the order is decided by the queues alone. The model is a
no-op (uniform probabilities), so the test measures the queue, not the CPU."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, create_engine, select

from shared.localstack import LocalStack, local_stack
from shared.models import Job
from shared.modelspec import file_digest

pytestmark = pytest.mark.integration

NOOP = "noop-text"
ROUTINE_JOBS = 200
TERMINAL = ("succeeded", "failed", "canceled", "expired")


def _noop_model(models: Path) -> None:
    directory = models / NOOP
    directory.mkdir(parents=True)
    (directory / "weights.bin").write_bytes(b"noop")
    spec = {"name": NOOP, "version": "0.0.1", "task": "text-classification", "architecture": "noop",
            "labels": ["a", "b"], "weights": "weights.bin", "sha256": file_digest(directory / "weights.bin")}
    (directory / "model.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("priorities")
    _noop_model(root / "models")
    # A Redis database of its own, emptied: no message left by another stack can run first.
    url = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(url).flushdb()
    with local_stack(root, redis_url=url, worker=False, env={"MEDQ_MODEL_DIR": str(root / "models")}) as running:
        yield running


def _submit(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"model": NOOP, "input": {"text": "queued text"}, **fields})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _wait_terminal(engine: Engine, ids: list[str], timeout: float = 45) -> dict[str, Job]:
    """Watch the database (not the API, whose reads would expire an overdue job themselves)."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as s:
            rows = {job.id: job for job in s.exec(select(Job).where(col(Job.id).in_(ids))).all()}
        if all(job.status in TERMINAL for job in rows.values()) and len(rows) == len(ids):
            return rows
        if time.monotonic() > deadline:
            pending = sum(job.status not in TERMINAL for job in rows.values())
            raise AssertionError(f"{pending} job(s) still not finished")
        time.sleep(0.2)


def test_stat_overtakes_routine_and_an_expired_job_never_runs(stack: LocalStack) -> None:
    engine = create_engine(stack.env["MEDQ_DATABASE_URL"])
    with stack.client() as client:
        expiring = _submit(client, max_queue_seconds=1)
        with ThreadPoolExecutor(8) as pool:
            routine = list(pool.map(lambda i: _submit(client, external_id=f"R-{i}"), range(ROUTINE_JOBS)))
        stat = _submit(client, priority="stat")
        assert stat["queue_position"] == 0, "stat is next although 201 jobs were queued before it"
        assert stat["estimated_start_at"] is None, "no throughput measured yet"
        # Let the expiring job's deadline pass before any worker exists (sleeping here asserts nothing on time).
        deadline = datetime.fromisoformat(expiring["created_at"]) + timedelta(seconds=1.5)
        time.sleep(max(0.0, (deadline - datetime.now(deadline.tzinfo)).total_seconds()))
        stack.start_worker()
        rows = _wait_terminal(engine, [expiring["id"], stat["id"], *(j["id"] for j in routine)])
        expired = client.get(f"/v1/jobs/{expiring['id']}").json()

    assert rows[stat["id"]].status == "succeeded"
    assert all(rows[j["id"]].status == "succeeded" for j in routine)
    stat_done = rows[stat["id"]].finished_at
    assert stat_done is not None
    earlier = sum(1 for j in routine if (rows[j["id"]].finished_at or stat_done) < stat_done)
    assert earlier < ROUTINE_JOBS // 2, f"{earlier} routine jobs finished before the stat job"
    assert rows[expiring["id"]].status == "expired" and rows[expiring["id"]].started_at is None
    assert expired["status"] == "expired" and expired["started_at"] is None and expired["finished_at"]


def test_a_queued_job_gets_an_estimated_start_from_measured_throughput(stack: LocalStack) -> None:
    engine = create_engine(stack.env["MEDQ_DATABASE_URL"])
    if "worker" not in stack.processes:
        stack.start_worker()
    with stack.client() as client:
        _wait_terminal(engine, [_submit(client)["id"] for _ in range(5)])  # some measured throughput
        stack.stop("worker")  # so that the next job stays queued
        job = _submit(client)
        # The API re-measures throughput at most every few seconds, so the estimate may need one more look.
        deadline = time.monotonic() + 20
        while job["estimated_start_at"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "queued" and job["queue_position"] == 0
    assert job["estimated_start_at"] is not None
    assert datetime.fromisoformat(job["estimated_start_at"]) >= datetime.fromisoformat(job["created_at"])
