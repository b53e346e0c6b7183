"""Redis killed (SIGKILL) and restarted on the same port while jobs are submitted and processed. Redis runs with
its append-only file (as docker-compose.yml does), so queued and unacknowledged messages survive; the last
second it had not written yet is recovered by the sweeper's queued-job path."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

from shared.localstack import LocalStack, local_stack
from shared.models import Job
from shared.redis_server import PrivateRedis, start_private_redis
from tests.reliability.conftest import noop_models, start_worker, wait_until
from tests.reliability.crashing_worker import SLOW
from tests.reliability.test_worker_crash import ENV, record, submit_batches, wait_count

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[PrivateRedis]]:
    holder = [start_private_redis(tmp_path_factory.mktemp("redis-data"))]
    yield holder
    holder[0].stop()


@pytest.fixture(scope="module")
def stack(broker: list[PrivateRedis], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("redis-restart")
    env = {**ENV, "MEDQ_MODEL_DIR": str(noop_models(root / "models", SLOW))}
    with local_stack(root, redis_url=broker[0].url, env=env, worker=False, webhooks=True) as running:
        start_worker(running)
        yield running


class Submitter:
    """Clients submitting one job at a time until stopped; each answer is kept with its external_id."""

    def __init__(self, stack: LocalStack, clients: int) -> None:
        self.stack, self.clients = stack, clients
        self.answers: list[tuple[str, int, str | None, str | None]] = []  # external_id, status, job id, retry
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, n: int) -> None:
        with self.stack.client(timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                external_id = f"S-{n}-{i}"
                i += 1
                response = client.post("/v1/jobs", json={"model": SLOW, "external_id": external_id,
                                                         "input": {"text": "a note"}})
                job_id = response.json().get("id") if response.status_code == 202 else None
                with self.lock:
                    self.answers.append((external_id, response.status_code, job_id,
                                         response.headers.get("retry-after")))
                time.sleep(0.02)


def test_redis_killed_during_submission_and_processing(stack: LocalStack, broker: list[PrivateRedis]) -> None:
    engine = create_engine(stack.env["MEDQ_DATABASE_URL"])
    with stack.client() as client:
        batch_ids = submit_batches(client, 200, 40)
    wait_count(engine, batch_ids, "running", 16)
    submitter = Submitter(stack, clients=8)
    with ThreadPoolExecutor(submitter.clients) as pool:
        futures = [pool.submit(submitter.run, n) for n in range(submitter.clients)]
        time.sleep(2)
        broker[0].crash()
        crashed_at = time.monotonic()
        time.sleep(4)  # clients keep submitting against a dead broker
        broker[0] = broker[0].restart()
        restarted_at = time.monotonic()
        time.sleep(3)  # ...and against the restarted one, through the same API processes
        submitter.stop.set()
        for future in futures:
            future.result()
    codes = Counter(status for _, status, _, _ in submitter.answers)
    assert set(codes) <= {202, 503}, codes
    refused = [a for a in submitter.answers if a[1] == 503]
    accepted = [a for a in submitter.answers if a[1] == 202]
    assert refused and all(a[3] for a in refused), "a 503 without Retry-After"
    with Session(engine) as session:
        stored = set(session.exec(select(Job.external_id).where(col(Job.external_id).startswith("S-"))).all())
    assert not stored & {a[0] for a in refused}, "a refused submission left a job row"
    assert stored == {a[0] for a in accepted}
    # After the restart the API took jobs again without being restarted.
    assert any(a[1] == 202 for a in submitter.answers[-submitter.clients * 3:])
    ids = batch_ids + [str(a[2]) for a in accepted]
    jobs = wait_until(engine, ids, timeout=180, stack=stack)
    finished_at = time.monotonic()
    assert Counter(job.status for job in jobs.values()) == {"succeeded": len(ids)}
    assert max(job.attempts for job in jobs.values()) <= 2
    assert stack.processes["worker"].poll() is None and stack.processes["webhooks"].poll() is None
    record("redis_restart", {"batch_jobs": len(batch_ids), "submitted_during": len(submitter.answers),
                             "accepted": len(accepted), "refused_503": len(refused), "completed": len(jobs),
                             "rerun_jobs": sum(job.attempts == 2 for job in jobs.values()),
                             "redis_down_s": round(restarted_at - crashed_at, 1),
                             "all_done_after_restart_s": round(finished_at - restarted_at, 1)})

