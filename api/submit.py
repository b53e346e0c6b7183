"""Job submission: validate, write the rows (and the idempotency record) first, then enqueue only ids. If the
broker refuses, the rows are removed again, so a refused request leaves no trace."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlmodel import Session

from api.inputs import to_new_job
from api.problems import validation_failed
from api.state import ApiState
from shared import crud, idempotency
from shared.db import session_scope
from shared.errors import FieldError, TooManyRequests, ValidationFailed
from shared.keys import Principal
from shared.logs import REQUEST_ID
from shared.models import Job
from shared.modelspec import ModelSpec
from shared.schemas import BatchCreate, JobCreate
from shared.settings import Settings
from shared.ssrf import Allowlist, check_url
from shared.status import Priority
from shared.webhook_secrets import tenant_allowlist


@dataclass(frozen=True)
class Submitted:
    jobs: list[Job]
    replayed: bool  # True when an Idempotency-Key returned jobs created earlier


def submit(st: ApiState, who: Principal, body: dict[str, object], *, batch: bool,
           idempotency_key: str | None) -> Submitted:
    request = _parse(body, batch=batch, settings=st.settings)
    spec = _spec(st, request.model)
    webhook = _webhook(st, who, request)
    items = _new_jobs(spec, request, st.settings)
    body_hash = idempotency.request_hash(body)
    with session_scope(st.engine) as session:
        if idempotency_key:
            earlier = idempotency.lookup(session, tenant_id=who.tenant_id, key=idempotency_key,
                                         body_hash=body_hash, is_batch=batch,
                                         ttl_hours=st.settings.idempotency_ttl_hours)
            if earlier is not None:
                return Submitted(crud.get_jobs(session, tenant_id=who.tenant_id, job_ids=earlier), True)
        _check_quota(st, session, who, len(items))
        jobs = crud.create_jobs(session, tenant_id=who.tenant_id, model=spec.name, model_version=spec.version,
                                items=items, priority=request.priority,
                                max_queue_seconds=request.max_queue_seconds, explain=request.explain,
                                webhook=webhook, request_id=REQUEST_ID.get())
        if idempotency_key:
            idempotency.remember(session, tenant_id=who.tenant_id, key=idempotency_key, body_hash=body_hash,
                                 is_batch=batch, job_ids=[j.id for j in jobs])
    _enqueue_or_undo(st, jobs, who=who, idempotency_key=idempotency_key)
    return Submitted(jobs, False)


def _parse(body: dict[str, object], *, batch: bool, settings: Settings) -> JobCreate | BatchCreate:
    try:
        request: JobCreate | BatchCreate = (BatchCreate if batch else JobCreate).model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
    if isinstance(request, BatchCreate) and len(request.items) > settings.max_batch_items:
        message = f"{len(request.items)} items; at most {settings.max_batch_items} per batch"
        raise ValidationFailed(message, errors=[FieldError("items", message)])
    return request


def _spec(st: ApiState, name: str) -> ModelSpec:
    spec = st.specs.get(name)
    if spec is None:
        known = ", ".join(sorted(st.specs)) or "none"
        raise ValidationFailed(f"unknown model {name!r}",
                               errors=[FieldError("model", f"unknown model {name!r}; known: {known}")])
    return spec


def _check_quota(st: ApiState, session: Session, who: Principal, count: int) -> None:
    """Per-tenant limits: a queue cap (one hospital cannot fill the queue for all) and a rate per minute."""
    settings = st.settings
    queued = crud.count_queued(session, tenant_id=who.tenant_id)
    if queued + count > settings.tenant_max_queued:
        raise TooManyRequests(f"{queued} jobs of this tenant are already queued; the limit is "
                              f"{settings.tenant_max_queued}", retry_after=max(settings.retry_after_seconds, 30))
    if st.limiter is not None:
        wait = st.limiter.hit(f"tenant:{who.tenant_id}", limit=settings.tenant_jobs_per_minute, window_s=60,
                              amount=count)
        if wait is not None:
            raise TooManyRequests(f"more than {settings.tenant_jobs_per_minute} jobs a minute for this tenant",
                                  retry_after=wait)


def _webhook(st: ApiState, who: Principal, request: JobCreate | BatchCreate) -> crud.Webhook | None:
    """The webhook, once its URL has passed the SSRF guard (checked again at every delivery)."""
    if request.webhook is None:
        return None
    url = str(request.webhook.url)
    with session_scope(st.engine) as session:
        tenant_entries = tenant_allowlist(session, tenant_id=who.tenant_id)
    check_url(url, Allowlist.parse([*st.settings.webhook_allow_entries, *tenant_entries]))
    return crud.Webhook(url=url, events=list(request.webhook.events), result_format=request.result_format)


def _new_jobs(spec: ModelSpec, request: JobCreate | BatchCreate, settings: Settings) -> list[crud.NewJob]:
    if isinstance(request, JobCreate):
        return [to_new_job(spec, request.input, request.external_id, field="input", settings=settings,
                           subject=request.subject)]
    return [
        to_new_job(spec, item.input, item.external_id, field=f"items[{i}].input", settings=settings)
        for i, item in enumerate(request.items)
    ]


def _enqueue_or_undo(st: ApiState, jobs: list[Job], *, who: Principal, idempotency_key: str | None) -> None:
    ids = [job.id for job in jobs]
    try:
        st.enqueuer.enqueue(ids, Priority(jobs[0].priority))
    except Exception:
        with session_scope(st.engine) as session:
            crud.delete_jobs(session, job_ids=ids)
            if idempotency_key:
                idempotency.forget(session, tenant_id=who.tenant_id, key=idempotency_key)
        raise
