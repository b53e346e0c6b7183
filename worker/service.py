"""Running jobs: plain functions the Celery task calls with ids. Claim → prepare each input (a bad input fails
alone) → one batched forward per model → store each result once."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from shared.db import session_scope
from shared.errors import InvalidInput, ModelUnavailable, PredictionFailed
from shared.models import Job
from shared.settings import Settings
from shared.worker_store import claim_jobs, release_jobs, store_failure, store_success
from worker.predictors.base import Predictor, build_result
from worker.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a worker process holds for its lifetime."""

    settings: Settings
    engine: Engine
    registry: Registry
    max_attempts: int = 3


def process_jobs(job_ids: list[str], *, runtime: Runtime, final_attempt: bool) -> None:
    """Run what is runnable among `job_ids`. On a batch-level failure the jobs go back to `queued` and
    PredictionFailed is raised for the caller to retry — unless this is the final attempt, when they fail."""
    with session_scope(runtime.engine) as session:
        jobs = claim_jobs(session, job_ids=job_ids, max_attempts=runtime.max_attempts)
    by_model: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_model[job.model].append(job)
    for model, group in by_model.items():
        _run_group(model, group, runtime=runtime, final_attempt=final_attempt)


def _run_group(model: str, jobs: list[Job], *, runtime: Runtime, final_attempt: bool) -> None:
    try:
        predictor = runtime.registry.get(model)
    except ModelUnavailable as exc:
        _fail(runtime, jobs, exc.job_error_type, exc.detail)
        return
    ready, prepared = _prepare(predictor, jobs, runtime)
    if not ready:
        return
    try:
        probabilities = predictor.predict(prepared)
        if len(probabilities) != len(prepared):
            raise PredictionFailed(f"model returned {len(probabilities)} outputs for {len(prepared)} inputs")
    except Exception as exc:
        log.exception("batch of %d %s job(s) failed", len(ready), model)
        if final_attempt:
            _fail(runtime, ready, PredictionFailed.job_error_type, f"the model failed: {exc}")
            return
        with session_scope(runtime.engine) as session:
            release_jobs(session, job_ids=[j.id for j in ready])
        raise PredictionFailed(str(exc)) from exc
    with session_scope(runtime.engine) as session:
        for job, probs in zip(ready, probabilities, strict=True):
            store_success(session, job_id=job.id, result=build_result(predictor.spec, probs))
    log.info("stored %d %s result(s)", len(ready), model)


def _prepare(predictor: Predictor, jobs: list[Job], runtime: Runtime) -> tuple[list[Job], list[Any]]:
    ready: list[Job] = []
    prepared: list[Any] = []
    for job in jobs:
        try:
            if job.input_data is None:
                raise InvalidInput("the job's input was removed")
            prepared.append(predictor.prepare(job.input_data, job.input_media_type))
            ready.append(job)
        except InvalidInput as exc:
            _fail(runtime, [job], exc.job_error_type, exc.detail)
    return ready, prepared


def _fail(runtime: Runtime, jobs: list[Job], error_type: str, detail: str) -> None:
    with session_scope(runtime.engine) as session:
        for job in jobs:
            store_failure(session, job_id=job.id, error_type=error_type, detail=detail)
    log.warning("%d job(s) failed: %s", len(jobs), error_type)
