"""Helpers for the fault tests: a model folder of no-op models, the patched worker, and database-side waits
(the tests watch the job rows directly, so their reads never change a job)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.localstack import LocalStack
from shared.models import Job, WebhookEvent
from shared.modelspec import file_digest

TERMINAL = ("succeeded", "failed", "canceled", "expired")
CRASHING_WORKER = [sys.executable, "-m", "tests.reliability.crashing_worker"]


def noop_models(root: Path, *names: str) -> Path:
    """A model folder holding a no-op text model per name (see crashing_worker for what each name does)."""
    for name in names:
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "weights.bin").write_bytes(b"noop")
        spec = {"name": name, "version": "0.0.1", "task": "text-classification", "architecture": "noop",
                "labels": ["a", "b"], "weights": "weights.bin", "sha256": file_digest(directory / "weights.bin")}
        (directory / "model.json").write_text(json.dumps(spec))
    return root


def start_worker(stack: LocalStack, name: str = "worker") -> None:
    stack.start(name, CRASHING_WORKER)


def statuses(engine: Engine, ids: list[str]) -> dict[str, Job]:
    with Session(engine) as session:
        return {job.id: job for job in session.exec(select(Job).where(col(Job.id).in_(ids))).all()}


def wait_until(engine: Engine, ids: list[str], done: tuple[str, ...] = TERMINAL, timeout: float = 180,
               stack: LocalStack | None = None) -> dict[str, Job]:
    """Until every job is in one of `done`; raises with a count by status (and the logs) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        rows = statuses(engine, ids)
        if len(rows) == len(ids) and all(job.status in done for job in rows.values()):
            return rows
        if time.monotonic() > deadline:
            counts: dict[str, int] = {}
            for job in rows.values():
                counts[job.status] = counts.get(job.status, 0) + 1
            logs = stack.dump_logs() if stack else ""
            raise AssertionError(f"jobs not {done} after {timeout}s: {counts}\n{logs}")
        time.sleep(0.25)


def count_jobs(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Job)).one())


def events_by_job(engine: Engine, ids: list[str]) -> dict[str, list[WebhookEvent]]:
    with Session(engine) as session:
        rows = session.exec(select(WebhookEvent).where(col(WebhookEvent.job_id).in_(ids))).all()
    grouped: dict[str, list[WebhookEvent]] = {}
    for event in rows:
        grouped.setdefault(event.job_id, []).append(event)
    return grouped
