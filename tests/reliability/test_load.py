"""A short load run (64 clients x 10 s against a private stack, the no-op model): no errors, and every accepted
job finishes. Latency is measured and printed, never asserted (shared 2-core machines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import load_stack, run_load
from bench.models import NOOP
from tests.reliability.test_worker_crash import record

pytestmark = pytest.mark.integration


def test_64_clients_for_10_seconds(tmp_path: Path) -> None:
    with load_stack(tmp_path, api_threads=16) as (url, key):
        report = run_load(url, key, clients=64, seconds=10, model=NOOP, finish_timeout=240)
    print(report.summary())
    assert report.accepted, "no job was accepted"
    assert report.error_count == 0, report.summary()
    assert report.finished == {"succeeded": len(report.accepted)}, report.summary()
    record("load_short", {"clients": 64, "seconds": 10, "submits": len(report.latencies_ms),
                          "submits_per_s": round(len(report.latencies_ms) / 10, 1),
                          "p50_ms": round(report.pct(50), 1), "p95_ms": round(report.pct(95), 1),
                          "p99_ms": round(report.pct(99), 1), "errors": report.error_count,
                          "completed": sum(report.finished.values())})
