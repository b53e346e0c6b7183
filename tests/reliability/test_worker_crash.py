"""Worker crashes on real processes: kill -9 in the middle of 300 jobs, a poison job that kills every worker
that runs it, and SIGTERM of a busy worker. The sweeper runs in the webhook worker's beat every second."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from shared.localstack import LocalStack, local_stack
from shared.settings import PROJECT_ROOT
from tests.receiver import Receiver
from tests.reliability.conftest import events_by_job, noop_models, start_worker, statuses, wait_until
from tests.reliability.crashing_worker import CRASHER, SLOW

pytestmark = [pytest.mark.integration, pytest.mark.fault]

FIGURES = PROJECT_ROOT / "var" / "test-artifacts" / "reliability"
# Running jobs are requeued after 15 s: about three times the longest message here (250 items x 20 ms), as the
# production default (300 s) is well above the longest batch — below that, live jobs would be run twice.
ENV = {"MEDQ_SWEEP_RUNNING_AFTER_S": "15", "MEDQ_TEST_SLOW_ITEM_S": "0.02", "MEDQ_SWEEP_QUEUED_AFTER_S": "10",
       "MEDQ_SWEEP_INTERVAL_S": "1",
       "MEDQ_WORKER_CONCURRENCY": "4", "MEDQ_BATCH_MAX_SIZE": "16", "MEDQ_WEBHOOK_ALLOW": "127.0.0.1/32",
       "MEDQ_WEBHOOK_POLL_INTERVAL_S": "0.5", "MEDQ_WEBHOOK_RETRY_SCHEDULE": "1,1,1",
       "MEDQ_WORKER_METRICS_PORT": "0", "MEDQ_WEBHOOK_METRICS_PORT": "0"}


def record(name: str, figures: dict[str, Any]) -> None:
    """Print the measured figures and keep them for docs/reliability.md."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n[reliability] {name}: {figures}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("crash")
    env = {**ENV, "MEDQ_MODEL_DIR": str(noop_models(root / "models", SLOW, CRASHER))}
    with local_stack(root, env=env, worker=False, webhooks=True) as running:
        start_worker(running)
        yield running


@pytest.fixture(scope="module")
def engine(stack: LocalStack) -> Engine:
    return create_engine(stack.env["MEDQ_DATABASE_URL"])


@pytest.fixture
def live_worker(stack: LocalStack) -> LocalStack:
    """Each test starts with one running worker, whatever the previous test left."""
    proc = stack.processes.get("worker")
    if proc is None or proc.poll() is not None:
        start_worker(stack)
    return stack


def submit_batches(client: httpx.Client, count: int, per_batch: int, **extra: Any) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, per_batch):
        items = [{"input": {"text": f"note {i}"}, "external_id": f"N-{i}"}
                 for i in range(start, min(count, start + per_batch))]
        response = client.post("/v1/jobs/batch", json={"model": SLOW, "items": items, **extra})
        assert response.status_code == 202, response.text
        ids += [job["id"] for job in response.json()["jobs"]]
    return ids


def wait_count(engine: Engine, ids: list[str], status: str, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = sum(job.status == status for job in statuses(engine, ids).values())
        if count >= at_least:
            return count
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} jobs {status} after {timeout}s")


def received_by_job(receiver: Receiver, path: str, ids: list[str], timeout: float = 120) -> dict[str, set[str]]:
    """webhook-ids received per job, once every job has been called at least once."""
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, set[str]] = {}
        for request in [r for r in receiver.received if r.path == path]:
            got.setdefault(json.loads(request.body)["data"]["id"], set()).add(request.headers["webhook-id"])
        if set(got) >= set(ids) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_kill_9_in_the_middle_of_300_jobs_loses_and_duplicates_nothing(
        live_worker: LocalStack, engine: Engine, receiver: Receiver) -> None:
    stack = live_worker
    hook = {"url": f"{receiver.url}/kill", "events": ["job.succeeded", "job.failed"]}
    with stack.client() as client:
        ids = submit_batches(client, 300, 50, webhook=hook)
    done_before = wait_count(engine, ids, "succeeded", 50)
    stack.kill("worker")
    killed_at = time.monotonic()
    at_kill = Counter(job.status for job in statuses(engine, ids).values())
    assert at_kill["succeeded"] < 300 and at_kill["running"] > 0, f"not killed in the middle: {at_kill}"
    start_worker(stack)
    jobs = wait_until(engine, ids, timeout=240, stack=stack)
    recovery_s = time.monotonic() - killed_at
    assert Counter(job.status for job in jobs.values()) == {"succeeded": 300}
    assert all(job.result and job.result["model"] == SLOW and job.error is None for job in jobs.values())
    assert max(job.attempts for job in jobs.values()) <= 2  # one run, plus one for a job the kill interrupted
    events = events_by_job(engine, ids)
    assert all([e.type for e in events[i]] == ["job.succeeded"] for i in ids)  # one outbox event per job
    got = received_by_job(receiver, "/kill", ids)
    assert set(got) == set(ids)
    # Only retries of the same id may repeat: one webhook-id per job, and it is the job's event id.
    assert all(got[i] == {events[i][0].id} for i in ids)
    record("kill_9", {"jobs": 300, "succeeded_before_kill": done_before, "running_at_kill": at_kill["running"],
                      "queued_at_kill": at_kill["queued"], "completed": len(jobs), "duplicate_results": 0,
                      "webhook_calls": sum(1 for r in receiver.received if r.path == "/kill"),
                      "distinct_webhook_ids": sum(len(v) for v in got.values()),
                      "rerun_jobs": sum(job.attempts == 2 for job in jobs.values()),
                      "recovery_s": round(recovery_s, 1)})


@pytest.fixture
def quick_sweeper(live_worker: LocalStack) -> Iterator[LocalStack]:
    """The webhook worker (the sweeper's beat) restarted with a 3 s running threshold: a lone poison job has no
    long batch to protect, and each of its three crashes would otherwise wait 15 s."""
    stack = live_worker
    stack.stop("webhooks")
    stack.env["MEDQ_SWEEP_RUNNING_AFTER_S"] = "3"
    stack.start_webhook_worker()
    yield stack
    stack.stop("webhooks")
    stack.env["MEDQ_SWEEP_RUNNING_AFTER_S"] = ENV["MEDQ_SWEEP_RUNNING_AFTER_S"]
    stack.start_webhook_worker()


def test_a_poison_job_fails_after_three_tries_instead_of_looping(quick_sweeper: LocalStack, engine: Engine) -> None:
    stack = quick_sweeper
    with stack.client() as client:
        response = client.post("/v1/jobs", json={"model": CRASHER, "input": {"text": "kills its worker"}})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        crashes, deadline = 0, time.monotonic() + 240
        while statuses(engine, [job_id])[job_id].status not in ("failed", "succeeded") and time.monotonic() < deadline:
            if stack.processes["worker"].poll() is not None:
                crashes += 1
                start_worker(stack)  # as systemd or Kubernetes would
            time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "failed", job
        assert job["error"]["type"] == "too_many_attempts" and "3 times" in job["error"]["detail"]
        assert crashes == 3
        # The worker is not stuck in a loop: the next job runs.
        after = client.post("/v1/jobs", json={"model": SLOW, "input": {"text": "next"}}, headers={"Prefer": "wait=60"})
        assert after.status_code == 200 and after.json()["status"] == "succeeded", after.text
    record("poison", {"worker_crashes": crashes, "status": job["status"], "error": job["error"]["type"]})


def test_sigterm_finishes_the_in_flight_batch_and_runs_nothing_twice(live_worker: LocalStack, engine: Engine) -> None:
    stack = live_worker
    with stack.client() as client:
        ids = submit_batches(client, 240, 40)
    wait_count(engine, ids, "running", 16)
    proc = stack.processes.pop("worker")
    proc.terminate()
    returncode = proc.wait(timeout=120)  # warm shutdown: in-flight tasks finish first
    assert returncode == 0, stack.dump_logs()
    at_exit = Counter(job.status for job in statuses(engine, ids).values())
    assert at_exit["running"] == 0 and at_exit["succeeded"] > 0, at_exit  # finished, or handed back untouched
    start_worker(stack)
    jobs = wait_until(engine, ids, timeout=180, stack=stack)
    assert Counter(job.status for job in jobs.values()) == {"succeeded": 240}
    assert {job.attempts for job in jobs.values()} == {1}  # nothing ran twice
    record("sigterm", {"jobs": 240, "succeeded_by_stopping_worker": at_exit["succeeded"],
                       "queued_at_exit": at_exit["queued"], "completed": len(jobs), "ran_twice": 0})


