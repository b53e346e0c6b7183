"""Load: N concurrent clients (threads, one httpx connection each) submit single jobs as fast as they can for D
seconds against a local stack (or --url/--key), then wait for every accepted job to finish.

    .venv/bin/python -m bench.load                      # 64 clients x 60 s, no-op model, private stack
    .venv/bin/python -m bench.load --model disease-category --clients 16 --seconds 30

Reports submits/s, p50/p95/p99 submit latency (client side, loopback), errors by status, jobs completed.
The no-op model measures the API, Redis, the database and the worker's bookkeeping, not a model."""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.models import NOOP, prepare_model_dir
from shared.localstack import local_stack

TERMINAL = {"succeeded", "failed", "canceled", "expired"}


@dataclass
class LoadReport:
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    finished: Counter[str] = field(default_factory=Counter)
    drain_s: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + sum(n for code, n in self.statuses.items() if code != 202)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> str:
        submits = sum(self.statuses.values())
        return (f"{self.clients} clients x {self.seconds:.0f} s: {submits} submits, {submits / self.seconds:.1f}/s; "
                f"latency p50 {self.pct(50):.1f} ms, p95 {self.pct(95):.1f} ms, p99 {self.pct(99):.1f} ms; "
                f"errors {self.error_count} {dict(self.statuses)} {dict(self.errors)}; "
                f"completed {sum(self.finished.values())}/{len(self.accepted)} {dict(self.finished)} "
                f"({self.drain_s:.1f} s after the last submit)")


def run_load(base_url: str, key: str, *, clients: int, seconds: float, model: str,
             finish_timeout: float = 300) -> LoadReport:
    report = LoadReport(clients=clients, seconds=seconds)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(n: int) -> None:
        with _client(base_url, key) as client:
            i = 0
            while time.monotonic() < deadline:
                body = {"model": model, "external_id": f"L-{n}-{i}", "input": {"text": f"load test note {n} {i}"}}
                i += 1
                started = time.perf_counter()
                try:
                    response = client.post("/v1/jobs", json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        report.errors[type(exc).__name__] += 1
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    report.latencies_ms.append(elapsed)
                    report.statuses[response.status_code] += 1
                    if response.status_code == 202:
                        report.accepted.append(response.json()["id"])

    _run_threads(client_loop, clients)
    ended = time.monotonic()
    report.finished = wait_finished(base_url, key, report.accepted, timeout=finish_timeout, workers=min(clients, 16))
    report.drain_s = time.monotonic() - ended
    return report


def wait_finished(base_url: str, key: str, ids: list[str], *, timeout: float, workers: int) -> Counter[str]:
    """Poll every accepted job until it is terminal (or the timeout); the final status of each."""
    final: dict[str, str] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def poll_share(n: int) -> None:
        pending = ids[n::workers]
        with _client(base_url, key) as client:
            while pending and time.monotonic() < deadline:
                still = []
                for job_id in pending:
                    status = client.get(f"/v1/jobs/{job_id}").json().get("status", "unknown")
                    if status in TERMINAL:
                        with lock:
                            final[job_id] = status
                    else:
                        still.append(job_id)
                pending = still
                if pending:
                    time.sleep(0.5)

    _run_threads(poll_share, workers)
    return Counter(final.values())


def _run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@contextmanager
def _client(base_url: str, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        yield client


@contextmanager
def load_stack(root: Path, *, api_threads: int) -> Iterator[tuple[str, str]]:
    """A private stack (Redis, API, one inference worker) with the shipped models and the no-op model."""
    models = prepare_model_dir(root, bert_base=False)
    env = {"MEDQ_MODEL_DIR": str(models), "MEDQ_WORKER_METRICS_PORT": "0", "MEDQ_TENANT_JOBS_PER_MINUTE": "1000000",
           "MEDQ_TENANT_MAX_QUEUED": "1000000"}
    with local_stack(root / "stack", env=env, api_threads=api_threads) as stack:
        yield stack.base_url, stack.key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--model", default=NOOP)
    parser.add_argument("--url", help="an already running API (with --key); default: a private local stack")
    parser.add_argument("--key")
    args = parser.parse_args()
    if args.url:
        report = run_load(args.url, args.key, clients=args.clients, seconds=args.seconds, model=args.model)
    else:
        with tempfile.TemporaryDirectory() as tmp, load_stack(Path(tmp), api_threads=16) as (url, key):
            report = run_load(url, key, clients=args.clients, seconds=args.seconds, model=args.model)
    print(report.summary())


if __name__ == "__main__":
    main()
