"""(2) to (4): End to end through the API, Redis and a worker; and the plain Celery baseline. Latencies are the
server's own (job created → finished), read from the database, so client-side polling does not blur them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from tqdm import tqdm

from bench.cpu import cpu_per_item
from bench.stats import Row
from shared import crud
from shared.db import session_scope
from shared.keys import ensure_tenant
from shared.localstack import LocalStack
from shared.models import Job
from shared.status import Priority

TERMINAL = ("succeeded", "failed", "canceled", "expired")


def _measure(stack: LocalStack, ids: list[str], section: str, mode: str, *, from_start: bool = False,
             cpu: dict[str, float] | None = None) -> Row:
    """`from_start`: time from the first job's start, not its creation (the plain baseline's jobs are created
    before its worker starts, and its start-up should not count against it)."""
    engine = create_engine(stack.env["MEDQ_DATABASE_URL"])
    with Session(engine) as session:
        rows = session.exec(select(Job).where(col(Job.id).in_(ids))).all()
    engine.dispose()
    bad = [r for r in rows if r.status != "succeeded"]
    if bad or len(rows) != len(ids):
        raise RuntimeError(f"{mode}: {len(bad)} job(s) did not succeed, e.g. {bad[0].error if bad else None}")
    def begin(r: Job) -> datetime:
        return (r.started_at or r.created_at) if from_start else r.created_at

    started = min(begin(r) for r in rows)
    finished = max(r.finished_at for r in rows if r.finished_at)
    latencies = [((r.finished_at or r.created_at) - begin(r)).total_seconds() * 1000 for r in rows]
    batches = {r.result["batch"]["id"] for r in rows if r.result and "batch" in r.result}
    return Row(section, mode, len(rows), (finished - started).total_seconds(), latencies,
               mean_batch=len(rows) / len(batches) if batches else None, cpu_us=dict(cpu or {}))


def _run_clients(concurrency: int, work: list[Callable[[], list[str]]], desc: str, total: int) -> list[str]:
    ids: list[str] = []
    lock = threading.Lock()
    bar = tqdm(total=total, desc=desc, unit="job", leave=False, file=sys.stderr)

    def run(job: Callable[[], list[str]]) -> None:
        got = job()
        with lock:
            ids.extend(got)
            bar.update(len(got))

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, work))
    bar.close()
    return ids


def singles(stack: LocalStack, model: str, texts: list[str], *, concurrency: int, n: int, section: str) -> Row:
    """Closed loop: each client submits one job with `Prefer: wait=60` and sends the next when it returns."""
    clients = [stack.client(timeout=120) for _ in range(concurrency)]

    def one(i: int) -> Callable[[], list[str]]:
        def send() -> list[str]:
            # Retrying a POST is safe with an Idempotency-Key: a repeat returns the job the first one created.
            headers = {"Prefer": "wait=60", "Idempotency-Key": f"bench-{model}-{concurrency}-{i}-{uuid.uuid4()}"}
            body = {"model": model, "input": {"text": texts[i % len(texts)]}}
            for attempt in range(3):
                try:
                    response = clients[i % concurrency].post("/v1/jobs", json=body, headers=headers)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            response.raise_for_status()
            return [response.json()["id"]]
        return send

    with cpu_per_item(stack, n) as cpu:
        ids = _run_clients(concurrency, [one(i) for i in range(n)], f"singles c={concurrency}", n)
    for client in clients:
        client.close()
    return _measure(stack, ids, section, f"single jobs, c={concurrency}", cpu=cpu)


def batches(stack: LocalStack, model: str, texts: list[str], *, concurrency: int, n: int, batch_size: int,
            section: str) -> Row:
    """Closed loop: each client submits a batch with `Prefer: wait` (the API answers when every job is done,
    woken by the worker's notification: no polling) and sends the next when it returns."""
    # One HTTP client per client thread: building one (an SSL context) costs more CPU than the request.
    clients = [stack.client(timeout=120) for _ in range(concurrency)]

    def one(start: int) -> Callable[[], list[str]]:
        def send() -> list[str]:
            items = [{"input": {"text": texts[(start + k) % len(texts)]}} for k in range(batch_size)]
            client = clients[(start // batch_size) % concurrency]
            response = client.post("/v1/jobs/batch", json={"model": model, "items": items},
                                   headers={"Prefer": "wait=60"})
            response.raise_for_status()
            ids = [job["id"] for job in response.json()["jobs"]]
            if response.status_code != 200:  # not all done within the wait: long-poll the rest
                for job_id in ids:
                    _long_poll(client, job_id)
            return ids
        return send

    work = [one(start) for start in range(0, n, batch_size)]
    with cpu_per_item(stack, len(work) * batch_size) as cpu:
        ids = _run_clients(concurrency, work, f"batches c={concurrency}", len(work) * batch_size)
    for client in clients:
        client.close()
    return _measure(stack, ids, section, f"batch of {batch_size}, c={concurrency}", cpu=cpu)


def _long_poll(client: httpx.Client, job_id: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=60"})
        response.raise_for_status()
        if response.json()["status"] in TERMINAL:
            return
    raise TimeoutError(f"job {job_id} not done in {timeout}s")


def _wait_done(engine: Engine, ids: list[str], timeout: float = 600, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    query = select(func.count()).select_from(Job).where(col(Job.id).in_(ids), col(Job.status).in_(TERMINAL))
    while time.monotonic() < deadline:
        with Session(engine) as session:
            if session.exec(query).one() == len(ids):
                return
        # Figures come from server timestamps; polling only decides when a closed-loop client sends again.
        time.sleep(poll_s)
    raise TimeoutError(f"{len(ids)} jobs not done in {timeout}s")


def warm_up(stack: LocalStack, models: list[str]) -> None:
    """One job per model, waited for: the worker has loaded and warmed its models before anything is timed."""
    with stack.client(timeout=300) as client:
        for model in models:
            for _ in range(3):
                response = client.post("/v1/jobs", json={"model": model, "input": {"text": "warm-up note"}},
                                       headers={"Prefer": "wait=60"})
                if response.status_code == 200:
                    break
            else:
                raise RuntimeError(f"the worker did not finish a {model} job: {response.text}")


def plain_celery(stack: LocalStack, model: str, *, n: int) -> Row:
    """N single-id messages queued up front, then drained by the plain worker (no API in its path)."""
    from bench.plain_worker import QUEUE, TASK, make_app

    db = create_engine(stack.env["MEDQ_DATABASE_URL"])
    with session_scope(db) as session:
        tenant = ensure_tenant(session, name="bench-plain")
        items = [crud.NewJob(input_kind="text", input_data=b"x")] * n
        ids = [j.id for j in crud.create_jobs(session, tenant_id=tenant.id, model=model, model_version="0",
                                              items=items, priority=Priority.ROUTINE, max_queue_seconds=None,
                                              explain=False)]
    import os

    os.environ["MEDQ_REDIS_URL"], os.environ["MEDQ_DATABASE_URL"] = (stack.env["MEDQ_REDIS_URL"],
                                                                    stack.env["MEDQ_DATABASE_URL"])
    app = make_app()
    with app.producer_or_acquire() as producer:
        for job_id in ids:
            app.send_task(TASK, args=[job_id], queue=QUEUE, producer=producer)
    stack.start("plain-worker", [sys.executable, "-m", "bench.plain_worker"])
    _wait_done(db, ids, poll_s=0.05)
    stack.stop("plain-worker")
    db.dispose()
    return _measure(stack, ids, "4 queue ceiling (no-op)", "plain Celery, 1 task/item", from_start=True)


def litserve(model_dir: str, model: str, texts: list[str], *, levels: list[int], n: int, max_batch: int,
             logs: str) -> list[Row]:
    """Closed-loop clients against LitServe serving the same predictor; latencies are client-side."""
    from shared.localstack import wait_http
    from shared.redis_server import free_port

    port = free_port()
    with open(f"{logs}/litserve.log", "ab") as log:
        # Its own process group: LitServe starts worker processes that must be stopped with it.
        server = subprocess.Popen([sys.executable, "-m", "bench.peer_litserve", model_dir, model, str(port),
                                   str(max_batch)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows = []
    try:
        wait_http(f"http://127.0.0.1:{port}/health", [server], timeout=180)
        for c in levels:
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) for _ in range(c)]
            latencies: list[float] = []

            def one(i: int, clients: list[httpx.Client] = clients, latencies: list[float] = latencies) -> None:
                started = time.perf_counter()
                clients[i % len(clients)].post("/predict", json={"text": texts[i % len(texts)]}).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                list(tqdm(pool.map(one, range(n)), total=n, desc=f"LitServe c={c}", leave=False, file=sys.stderr))
            rows.append(Row("5 peer: LitServe", f"single requests, c={c}", n, time.perf_counter() - started,
                            latencies))
            for client in clients:
                client.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return rows
