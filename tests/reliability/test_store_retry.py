"""A database outage while a worker stores its results: the results are kept in memory and the write is tried
again; a longer outage goes up to the task, which retries the message (counted apart from batch retries)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Retry
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared import crud
from shared.db import session_scope
from shared.errors import DatabaseUnavailable, PredictionFailed
from shared.keys import ensure_tenant
from shared.queues import TASK_RUN_JOBS
from shared.settings import Settings
from shared.status import JobStatus, Priority
from shared.worker_store import store_results
from tests.reliability.conftest import noop_models, statuses
from worker import service
from worker.engine import InferenceEngine
from worker.registry import Registry
from worker.service import Runtime, process_jobs


@pytest.fixture
def runtime(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[Runtime]:
    local = settings.model_copy(update={"model_dir": noop_models(tmp_path / "models", "noop")})
    inference = InferenceEngine(Registry(local), local)
    yield Runtime(settings=local, engine=engine, inference=inference, db_retry_delays=(0.01, 0.01, 0.01))
    inference.close()


def _job(engine: Engine) -> str:
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="t")
        (job,) = crud.create_jobs(s, tenant_id=tenant.id, model="noop", model_version="0.0.1",
                                  items=[crud.NewJob(input_kind="text", input_data=b"a note")],
                                  priority=Priority.ROUTINE, max_queue_seconds=None, explain=False)
        return job.id


def _outage(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """The next `failures` result writes find the database unreachable (as session_scope reports it)."""
    calls = [0]

    def flaky(session: Session, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] <= failures:
            raise DatabaseUnavailable("the database cannot be reached", retry_after=5)
        store_results(session, **kwargs)

    monkeypatch.setattr(service, "store_results", flaky)
    return calls


def test_a_short_outage_costs_no_recomputation(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _job(runtime.engine)
    calls = _outage(monkeypatch, failures=2)
    process_jobs([job_id], runtime=runtime, final_attempt=False)
    job = statuses(runtime.engine, [job_id])[job_id]
    assert calls[0] == 3 and job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.result


def test_a_long_outage_goes_to_the_task_and_the_retry_stores_once(runtime: Runtime,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _job(runtime.engine)
    _outage(monkeypatch, failures=len(runtime.db_retry_delays) + 1)
    with pytest.raises(DatabaseUnavailable):
        process_jobs([job_id], runtime=runtime, final_attempt=False, token="message-1")
    assert statuses(runtime.engine, [job_id])[job_id].status == JobStatus.RUNNING  # not lost: retried/swept
    process_jobs([job_id], runtime=runtime, final_attempt=False, token="message-2")  # another message: hands off
    assert statuses(runtime.engine, [job_id])[job_id].attempts == 1
    process_jobs([job_id], runtime=runtime, final_attempt=False, token="message-1")  # the task's own retry
    job = statuses(runtime.engine, [job_id])[job_id]
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2


@pytest.fixture(scope="module")
def celery_app(tmp_path_factory: pytest.TempPathFactory) -> Celery:
    """One app for the module: Celery registers task names process-wide."""
    from shared.settings import get_settings
    from worker.celery_app import create_celery

    db = tmp_path_factory.mktemp("celery") / "medq.db"
    return create_celery(get_settings(database_url=f"sqlite:///{db}", redis_url="redis://127.0.0.1:1/0"))


def _run_task(app: Celery, monkeypatch: pytest.MonkeyPatch, error: Exception, *, retries: int,
              db_retries: int) -> dict[str, Any]:
    """Run the task body once with process_jobs raising `error`; return what it asked Celery's retry for."""
    task = app.tasks[TASK_RUN_JOBS]
    asked: dict[str, Any] = {}

    def fail(job_ids: list[str], **kwargs: Any) -> None:
        asked["final_attempt"] = kwargs["final_attempt"]
        asked["token"] = kwargs.get("token")
        raise error

    def retry(**kwargs: Any) -> Retry:
        asked.update(kwargs)
        return Retry("retry")

    monkeypatch.setattr(service, "process_jobs", fail)
    monkeypatch.setattr(task, "retry", retry)
    task.push_request(retries=retries, id="task-7")
    try:
        with pytest.raises(Retry):
            task.run(["j1"], db_retries=db_retries)
    finally:
        task.pop_request()
    return asked


def test_the_task_retries_a_database_outage_apart_from_batch_retries(celery_app: Celery,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    down = DatabaseUnavailable("down", retry_after=5)
    asked = _run_task(celery_app, monkeypatch, down, retries=3, db_retries=3)
    assert asked["kwargs"] == {"job_ids": ["j1"], "db_retries": 4} and asked["max_retries"] is None
    assert asked["final_attempt"] is False  # three outage retries are not three batch failures
    assert asked["token"] == "task-7"  # the task id, the same on every retry, is the claim token
    asked = _run_task(celery_app, monkeypatch, PredictionFailed("batch"), retries=4, db_retries=3)
    assert asked["max_retries"] == 5 and asked["final_attempt"] is False


def test_the_task_gives_up_on_an_endless_outage(celery_app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.tasks import DB_MAX_RETRIES

    task = celery_app.tasks[TASK_RUN_JOBS]
    monkeypatch.setattr(service, "process_jobs", lambda *a, **k: (_ for _ in ()).throw(DatabaseUnavailable("x")))
    with pytest.raises(DatabaseUnavailable):  # acknowledged as failed; the sweeper requeues the jobs later
        task.run(["j1"], db_retries=DB_MAX_RETRIES)
