"""/v1/jobs: thin views over `api.submit` and `shared.crud`."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request, url_for
from sqlmodel import Session

from api import metrics
from api.auth import principal, require_scope
from api.inputs import read_body
from api.openapi import JOBS, documented
from api.state import ApiState, state
from api.submit import submit
from shared import crud
from shared.db import session_scope
from shared.errors import FieldError, ValidationFailed
from shared.models import Job
from shared.presenters import job_out
from shared.schemas import BatchCreate, BatchOut, JobCreate, JobList, JobListQuery, JobOut
from shared.status import JobStatus

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


@bp.post("")
@documented("createJob", tag=JOBS, json=JobCreate, ok={
    202: (JobOut, "Accepted: the job, queued. `Location` says where to poll it."),
    200: (JobOut, "The finished job (`Prefer: wait=N` and it finished in time), or the same job again (a "
                  "repeated `Idempotency-Key` with the same body)."),
}, errors=(400, (409, "`Idempotency-Key` reused with another body."), 413, 415,
           (422, "Invalid job: unknown model or field, empty or too long text, bad base64, not an image, an image "
                 "for a text model, a refused webhook URL, …"),
           (429, "Tenant quota (jobs a minute, jobs queued) or too many failed authentications; see `Retry-After`."),
           (503, "The job queue or the database is unavailable: nothing was created. See `Retry-After`.")))
@require_scope("jobs:write")
def create_job() -> Response:
    """Submit a job.

    A clinical text or an image as JSON, an image as `multipart/form-data`, or a FHIR `DocumentReference` (or a
    `Bundle` holding one) as `application/fhir+json`. The job is stored before its id is queued. Scope
    `jobs:write`."""
    st = state()
    done = submit(st, principal(), read_body(request), batch=False,
                  idempotency_key=request.headers.get("Idempotency-Key"))
    if not done.replayed:
        metrics.jobs_accepted(done.jobs)
    job = _wait_for(st, done.jobs[0], _prefer_wait(st))
    finished = JobStatus(job.status).is_terminal
    response = _job_response(st, job, status=200 if done.replayed or finished else 202)
    response.headers["Location"] = url_for("jobs.get_job", job_id=job.id)
    return response


@bp.post("/batch")
@documented("createBatch", tag=JOBS, json=BatchCreate, ok={
    202: (BatchOut, "Accepted: the jobs, in item order."),
    200: (BatchOut, "Every job finished (`Prefer: wait=N` and they all finished in time), or the same jobs again "
                    "(a repeated `Idempotency-Key` with the same body)."),
}, errors=(400, (409, "`Idempotency-Key` reused with another body."), 413, 415,
           (422, "An invalid item refuses the whole batch, naming it (`items[3].input`); more than 256 items. "
                 "Nothing is created."),
           (503, "The job queue or the database is unavailable: nothing was created. See `Retry-After`.")))
@require_scope("jobs:write")
def create_batch() -> tuple[Response, int]:
    """Submit a batch of jobs for one model.

    Up to 256 items, all or nothing, sent to the workers as one queue message. With `Prefer: wait=N` (N ≤ 60)
    the answer is held until every job is terminal (200, with the results) or N seconds pass (202). Scope
    `jobs:write`."""
    st = state()
    done = submit(st, principal(), read_body(request), batch=True,
                  idempotency_key=request.headers.get("Idempotency-Key"))
    if not done.replayed:
        metrics.jobs_accepted(done.jobs)
    finished = _wait_for_all(st, [j.id for j in done.jobs], _prefer_wait(st))
    with session_scope(st.engine) as session:
        jobs = crud.get_jobs(session, tenant_id=principal().tenant_id, job_ids=[j.id for j in done.jobs])
        positions = crud.queue_positions(session, jobs=jobs)
        out = BatchOut(jobs=[job_out(j, queue_position=positions[j.id]) for j in jobs])
    return jsonify(out.model_dump(mode="json")), 200 if done.replayed or finished else 202


@bp.get("")
@documented("listJobs", tag=JOBS, query=JobListQuery, ok={200: (JobList, "One page of jobs, newest first.")},
            errors=((400, "`cursor` is not one this API gave."), (422, "Invalid `status` or `limit`.")))
@require_scope("jobs:read")
def list_jobs() -> Response:
    """List jobs, newest first.

    Filter by `status`, `model` and `external_id`; follow `next_cursor` (null on the last page). Scope
    `jobs:read`."""
    args = request.args
    limit = _int_arg("limit", default=50, low=1, high=200)
    status = _status_arg(args.get("status"))
    with session_scope(state().engine) as session:
        jobs, cursor = crud.list_jobs(session, tenant_id=principal().tenant_id, status=status,
                                      model=args.get("model"), external_id=args.get("external_id"),
                                      limit=limit, cursor=args.get("cursor"))
        positions = crud.queue_positions(session, jobs=jobs)
        out = JobList(jobs=[job_out(j, queue_position=positions[j.id]) for j in jobs], next_cursor=cursor)
    return jsonify(out.model_dump(mode="json"))


@bp.get("/<job_id>")
@documented("getJob", tag=JOBS, ok={200: (JobOut, "The job.")}, errors=(404,))
@require_scope("jobs:read")
def get_job(job_id: str) -> Response:
    """Get a job.

    Poll it until its status is terminal (`succeeded`, `failed`, `canceled`, `expired`), or long-poll with
    `Prefer: wait=N` (N ≤ 60): the answer is held until the job is terminal or N seconds pass, whichever is
    first. `queue_position` (0 = next) and `estimated_start_at` while it is queued. Scope `jobs:read`."""
    st = state()
    with session_scope(st.engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
    return _job_response(st, _wait_for(st, job, _prefer_wait(st)), status=200)


@bp.post("/<job_id>/cancel")
@documented("cancelJob", tag=JOBS, ok={200: (JobOut, "The job, canceled (or, while running, canceled at its batch "
                                                     "boundary).")},
            errors=(404, (409, "The job is already terminal.")))
@require_scope("jobs:write")
def cancel_job(job_id: str) -> Response:
    """Cancel a job.

    A queued job becomes `canceled` at once; a running one finishes or is canceled at its batch boundary.
    Scope `jobs:write`."""
    st = state()
    with session_scope(st.engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
        crud.cancel_job(session, job=job)
    return _job_response(st, job, status=200)


@bp.delete("/<job_id>")
@documented("deleteJob", tag=JOBS, ok={204: (None, "Erased.")}, errors=(404,))
@require_scope("jobs:write")
def delete_job(job_id: str) -> tuple[str, int]:
    """Erase a job's data.

    Input, result, explanation and patient reference are erased; the job keeps its id, status and times with
    `data_removed: true`. A queued or running job is canceled first. Scope `jobs:write`."""
    with session_scope(state().engine) as session:
        job = crud.get_job(session, tenant_id=principal().tenant_id, job_id=job_id)
        crud.erase_job(session, job=job)
    return "", 204


def _job_response(st: ApiState, job: Job, *, status: int) -> Response:
    with session_scope(st.engine) as session:
        position = crud.queue_position(session, job=job)
    response = jsonify(job_out(job, queue_position=position).model_dump(mode="json"))
    response.status_code = status
    return response


def _prefer_wait(st: ApiState) -> float:
    """Seconds asked for with `Prefer: wait=N`, capped at the limit; a malformed Prefer is ignored."""
    match = _PREFER_WAIT.search(request.headers.get("Prefer", ""))
    return min(int(match.group(1)), st.settings.max_wait_seconds) if match else 0.0


def _wait_for(st: ApiState, job: Job, seconds: float) -> Job:
    """Hold the request until the job is terminal (woken by the worker's notification) or time runs out."""
    if seconds <= 0 or st.waiter is None or JobStatus(job.status).is_terminal:
        return job
    latest = [job]

    def is_done() -> bool:
        with Session(st.engine) as session:
            found = session.get(Job, job.id)
        if found is not None:
            latest[0] = found
        return found is None or JobStatus(latest[0].status).is_terminal

    st.waiter.wait([job.id], seconds, is_done)
    return latest[0]


def _wait_for_all(st: ApiState, job_ids: list[str], seconds: float) -> bool:
    """Hold the request until every job is terminal or time runs out; True if they all finished."""
    if seconds <= 0 or st.waiter is None:
        return False

    def all_done() -> bool:
        with Session(st.engine) as session:
            return crud.count_terminal(session, job_ids=job_ids) == len(set(job_ids))

    return st.waiter.wait(job_ids, seconds, all_done)


def _int_arg(name: str, *, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _bad_query(name, f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _status_arg(raw: str | None) -> JobStatus | None:
    if raw is None:
        return None
    try:
        return JobStatus(raw)
    except ValueError as exc:
        raise _bad_query("status", f"status must be one of {', '.join(s.value for s in JobStatus)}") from exc


def _bad_query(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[FieldError(field, message)])
