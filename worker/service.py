"""Running jobs: plain functions the Celery task calls with ids. Claim → prepare each input in the caller's
thread (a bad input fails alone) → submit to the model's batcher, where items from many messages share one
forward pass → store each result once."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.db import session_scope
from shared.errors import DatabaseUnavailable, InvalidInput, JobFailure, ModelUnavailable, PredictionFailed
from shared.logs import REQUEST_ID
from shared.models import utcnow
from shared.outbox import record_events
from shared.settings import Settings
from shared.status import Priority
from shared.worker_store import Claimant, Claimed, claim_jobs, release_jobs, store_results
from worker import metrics
from worker.batching import BatcherClosed, BatchFailed
from worker.engine import InferenceEngine, Served
from worker.predictors.base import Predictor, build_result

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Runtime:
    """What a worker process holds for its lifetime."""

    settings: Settings
    engine: Engine
    inference: InferenceEngine
    max_attempts: int = 3
    # Told the ids of jobs that reached a terminal status (the API's Prefer: wait listens).
    notify: Callable[[list[str]], None] = lambda ids: None
    # Sends delivery tasks for webhook events recorded with the terminal statuses.
    send_webhooks: Callable[[list[str]], None] = lambda ids: None
    # Seconds between tries of a write while the database is unreachable (~30 s in all), results held in memory:
    # a database restart or failover costs no recomputation. Then DatabaseUnavailable goes up to the task.
    db_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

    def finished(self, job_ids: list[str], event_ids: list[str]) -> None:
        """After the commit: wake waiting clients and send the webhooks. A failure here loses nothing (the
        events are in the outbox and the dispatcher resends them)."""
        self.notify(job_ids)
        if job_ids:
            log.info("%d job(s) finished: %s", len(job_ids), ",".join(job_ids))
        if event_ids:
            try:
                self.send_webhooks(event_ids)
            except Exception as exc:  # the broker may be down; the dispatcher will pick them up
                log.warning("%d webhook event(s) left to the dispatcher: %s", len(event_ids), exc)


def process_jobs(job_ids: list[str], *, runtime: Runtime, final_attempt: bool, token: str | None = None) -> None:
    """Run what is runnable among `job_ids`. Jobs whose batch failed as a whole go back to `queued` and
    PredictionFailed is raised for the caller to retry — unless this is the final attempt, when they fail.
    `token` names the message: its own retries take back the running jobs it claimed (a database outage left
    them running); any other message leaves them to it unless they are presumed dead."""
    REQUEST_ID.set(None)  # task threads are reused: nothing from the previous message
    claimant = Claimant(token=token, stale_after_s=runtime.settings.sweep_running_after_s)
    with session_scope(runtime.engine) as session:
        jobs = claim_jobs(session, job_ids=job_ids, max_attempts=runtime.max_attempts, claimant=claimant)
        claimed = {job.id for job in jobs}
        unclaimed = [i for i in job_ids if i not in claimed]  # expired, canceled or failed at claim time
        events = record_events(session, job_ids=unclaimed, dispatched_at=utcnow()) if unclaimed else []
    runtime.finished(unclaimed, events)
    _run_claimed(jobs, runtime, final_attempt)


def _run_claimed(jobs: list[Claimed], runtime: Runtime, final_attempt: bool) -> None:
    # The submissions' request ids, so this message's log lines join the API's (one id for one request).
    REQUEST_ID.set(",".join(sorted({j.request_id for j in jobs if j.request_id})) or None)
    by_model: dict[str, list[Claimed]] = defaultdict(list)
    for job in jobs:
        by_model[job.model].append(job)
        if job.started_at is not None:
            metrics.QUEUE_DELAY.labels(job.model, job.priority).observe(
                (job.started_at - job.created_at).total_seconds())
    pending = [_submit_group(model, group, runtime) for model, group in by_model.items()]
    retry: list[Claimed] = []
    for predictor, submitted in pending:
        retry += _collect(predictor, submitted, runtime)
    if not retry:
        return
    if final_attempt:
        _fail(runtime, retry, PredictionFailed.job_error_type, "the model failed on every attempt")
        return
    _write(runtime, lambda session: release_jobs(session, job_ids=[j.id for j in retry]))
    raise PredictionFailed(f"{len(retry)} job(s) put back in the queue after a batch failure")


Submitted = list[tuple[Claimed, "Future[Served]"]]


def _submit_group(model: str, jobs: list[Claimed], runtime: Runtime) -> tuple[Predictor | None, Submitted]:
    try:
        predictor = runtime.inference.registry.get(model)
        plain = runtime.inference.batcher(model)
        explaining = runtime.inference.batcher(model, explain=True) if any(j.explain for j in jobs) else plain
    except ModelUnavailable as exc:
        _fail(runtime, jobs, exc.job_error_type, exc.detail)
        return None, []
    submitted: Submitted = []
    for job in jobs:
        try:
            if job.input_data is None:
                raise InvalidInput("the job's input was removed")
            item = predictor.prepare(job.input_data, job.input_media_type)
            batcher = explaining if job.explain else plain
            submitted.append((job, batcher.submit(item, priority=Priority(job.priority).rank)))
        except InvalidInput as exc:
            _fail(runtime, [job], exc.job_error_type, exc.detail)
        except BatcherClosed:
            submitted.append((job, _failed_future(BatchFailed("the worker is shutting down"))))
    return predictor, submitted


def _collect(predictor: Predictor | None, submitted: Submitted, runtime: Runtime) -> list[Claimed]:
    """Store what each future gave; return the jobs to retry."""
    retry: list[Claimed] = []
    outcomes: list[tuple[Claimed, dict[str, Any] | JobFailure]] = []
    for job, future in submitted:
        try:
            served = future.result()
        except BatchFailed as exc:
            log.warning("job %s: batch failed: %s", job.id, exc)
            retry.append(job)
            continue
        except JobFailure as exc:
            outcomes.append((job, exc))
            continue
        assert predictor is not None
        result = build_result(predictor.spec, served.probabilities)
        result["explanation"] = served.explanation
        result["batch"] = {"id": served.batch_id, "size": served.batch_size}
        outcomes.append((job, result))
    _store(runtime, outcomes)
    return retry


def _store(runtime: Runtime, outcomes: list[tuple[Claimed, dict[str, Any] | JobFailure]]) -> None:
    if not outcomes:
        return
    results = {job.id: o for job, o in outcomes if not isinstance(o, JobFailure)}
    failures = {job.id: (o.job_error_type, o.detail) for job, o in outcomes if isinstance(o, JobFailure)}
    for job, outcome in outcomes:
        metrics.JOBS.labels(job.model, outcome.job_error_type if isinstance(outcome, JobFailure)
                            else "succeeded").inc()
    ids = [job.id for job, _ in outcomes]
    events = _write(runtime, lambda session: _store_and_record(session, ids, results, failures))
    runtime.finished(ids, events)


def _fail(runtime: Runtime, jobs: list[Claimed], error_type: str, detail: str) -> None:
    ids = [job.id for job in jobs]
    for job in jobs:
        metrics.JOBS.labels(job.model, error_type).inc()
    failures = {job.id: (error_type, detail) for job in jobs}
    events = _write(runtime, lambda session: _store_and_record(session, ids, {}, failures))
    runtime.finished(ids, events)
    log.warning("%d job(s) failed: %s", len(jobs), error_type)


def _store_and_record(session: Session, ids: list[str], results: dict[str, dict[str, Any]],
                      failures: dict[str, tuple[str, str]]) -> list[str]:
    """One transaction: the outcomes (each only on a job still running) and their webhook events."""
    store_results(session, results=results, failures=failures)
    return record_events(session, job_ids=ids, dispatched_at=utcnow())


def _write(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """Run `work` in a transaction, trying again while the database is unreachable. Safe to repeat: every write
    here is a compare-and-set, and a failed try was rolled back."""
    for delay in (*runtime.db_retry_delays, None):
        try:
            with session_scope(runtime.engine) as session:
                return work(session)
        except DatabaseUnavailable as exc:
            if delay is None:
                raise
            log.warning("database unavailable while storing results, retrying in %.1fs: %s", delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _failed_future(exc: Exception) -> Future[Served]:
    future: Future[Served] = Future()
    future.set_exception(exc)
    return future
