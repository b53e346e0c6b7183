"""The database goes away while jobs are submitted and processed: Postgres behind a TCP proxy that cuts every
connection (the realistic outage: a crash, failover or partition; SQLite is a local file that cannot vanish
under open connections the same way). Needs MEDQ_TEST_POSTGRES_URL."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from shared.localstack import LocalStack, local_stack
from tests.conftest import fresh_postgres_database
from tests.reliability.conftest import count_jobs, noop_models, start_worker, wait_until
from tests.reliability.crashing_worker import SLOW
from tests.reliability.tcpproxy import TcpProxy
from tests.reliability.test_worker_crash import ENV, record, submit_batches, wait_count

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.postgres]

OUTAGE_S = 8.0  # shorter than the worker's in-memory write retries (~30 s): no result is recomputed


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TcpProxy, str, str]]:
    """A fresh database, and its URL through the proxy (for the stack) and direct (for the test's checks)."""
    with fresh_postgres_database("medq_outage") as url:
        direct = make_url(url)
        proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
        through = direct.set(host="127.0.0.1", port=proxy.port)
        yield proxy, through.render_as_string(hide_password=False), url
        proxy.close()


@pytest.fixture(scope="module")
def stack(database: tuple[TcpProxy, str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("db-outage")
    env = {**ENV, "MEDQ_DATABASE_URL": database[1], "MEDQ_MODEL_DIR": str(noop_models(root / "models", SLOW))}
    with local_stack(root, env=env, worker=False, webhooks=True) as running:
        start_worker(running)
        yield running


def _refused_while_down(stack: LocalStack, engine: Engine) -> dict[str, object]:
    before = count_jobs(engine)
    with stack.client(timeout=90) as client:
        single = client.post("/v1/jobs", json={"model": SLOW, "input": {"text": "during the outage"}})
        batch = client.post("/v1/jobs/batch", json={"model": SLOW, "items": [{"input": {"text": "x"}}]})
        ready = client.get("/readyz")
    for response in (single, batch, ready):
        assert response.status_code == 503, response.text
        assert response.headers.get("retry-after"), response.headers
    for response in (single, batch):
        assert response.headers["content-type"].startswith("application/problem+json")
    assert count_jobs(engine) == before  # nothing half-written
    return {"submit": single.status_code, "batch": batch.status_code, "readyz": ready.status_code}


def test_database_outage_loses_no_result(stack: LocalStack, database: tuple[TcpProxy, str, str]) -> None:
    proxy, _, direct = database
    engine = create_engine(direct)
    with stack.client() as client:
        ids = submit_batches(client, 160, 40)
    wait_count(engine, ids, "running", 16)
    proxy.cut()
    cut_at = time.monotonic()
    answers = _refused_while_down(stack, engine)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
    proxy.restore()
    restored_at = time.monotonic()
    jobs = wait_until(engine, ids, timeout=180, stack=stack)
    done_s = time.monotonic() - restored_at
    assert Counter(job.status for job in jobs.values()) == {"succeeded": len(ids)}
    # Results are kept in memory through the outage, so almost nothing is recomputed. A claim whose COMMIT was cut
    # mid-flight is ambiguous to the worker (committed on the server, an error to the client): its message is
    # retried and the job claimed a second time — one extra run, never a second result.
    recomputed = sum(job.attempts > 1 for job in jobs.values())
    assert max(job.attempts for job in jobs.values()) <= 2 and recomputed <= len(ids) // 4, recomputed
    with stack.client() as client:  # the API reconnected by itself
        after = client.post("/v1/jobs", json={"model": SLOW, "input": {"text": "after"}}, headers={"Prefer": "wait=60"})
    assert after.status_code == 200 and after.json()["status"] == "succeeded", after.text
    assert stack.processes["worker"].poll() is None
    record("database_outage", {"jobs": len(ids), "outage_s": round(restored_at - cut_at, 1), **answers,
                               "completed": len(jobs), "recomputed": recomputed,
                               "all_done_after_restore_s": round(done_s, 1)})
