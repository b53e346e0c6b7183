"""SQLModel tables. Times are stored as naive UTC (SQLite keeps no zone) and come back zone-aware."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from pydantic_core import PydanticUndefined
from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from shared.crypto import EncryptedBytes, EncryptedJSON, EncryptedText


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def new_row(table: type[SQLModel], **values: Any) -> dict[str, Any]:
    """A complete row for a Core insert: the model's field defaults (factories called) under `values`. Core
    inserts skip SQLModel's constructor, which is where these defaults would otherwise come from."""
    defaults = _field_defaults(table)
    return {**defaults.static, **{name: factory() for name, factory in defaults.factories.items()}, **values}


@dataclass(frozen=True)
class _Defaults:
    static: dict[str, Any]
    factories: dict[str, Callable[[], Any]]


@functools.cache
def _field_defaults(table: type[SQLModel]) -> _Defaults:
    fields = table.model_fields.items()
    return _Defaults(
        static={n: f.default for n, f in fields if f.default is not PydanticUndefined and f.default_factory is None},
        factories={n: cast(Callable[[], Any], f.default_factory) for n, f in fields if f.default_factory is not None},
    )


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone; always returns an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _time(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Tenant(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=100)
    # Days a finished job's data is kept before it is purged (None: MEDQ_RETENTION_DAYS).
    retention_days: int | None = None
    # Webhook targets this tenant may reach although they are private (CIDRs or host names), beside the
    # service-wide MEDQ_WEBHOOK_ALLOW.
    webhook_allow: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; `prefix` lets people recognise a key without revealing it."""

    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(unique=True, index=True, max_length=64)
    scopes: str = "jobs:read jobs:write"
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime | None = _time()
    revoked_at: datetime | None = _time()
    last_used_at: datetime | None = _time()


class Job(SQLModel, table=True):
    """One inference job. The input lives here, never in the queue message."""

    __table_args__ = (
        Index("ix_job_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_job_queue_order", "status", "priority_rank", "created_at"),
        Index("ix_job_tenant_status", "tenant_id", "status"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    model: str = Field(max_length=100)
    model_version: str = Field(max_length=50)
    status: str = Field(default="queued", max_length=16)
    priority: str = Field(default="routine", max_length=16)
    priority_rank: int = 2
    external_id: str | None = Field(default=None, max_length=128, index=True)
    input_kind: str = Field(max_length=16)  # "text" | "image"
    input_media_type: str | None = Field(default=None, max_length=64)
    # Patient data is encrypted at rest (shared/crypto.py): the input, the patient reference, the result.
    input_data: bytes | None = Field(default=None, sa_column=Column(EncryptedBytes("job.input_data"), nullable=True))
    # The patient reference from a FHIR input (a FHIR Reference), used as RiskAssessment.subject.
    subject: dict[str, Any] | None = Field(default=None, sa_column=Column(EncryptedJSON("job.subject"), nullable=True))
    # Identifiers of the input that are not patient data (DICOM Study/Series/SOP Instance UIDs, the FHIR
    # DocumentReference), kept to reference the input from the FHIR result.
    input_refs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    explain: bool = False
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_events: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    result_format: str = Field(default="json", max_length=8)  # of webhook bodies: "json" | "fhir"
    max_queue_seconds: int | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(EncryptedJSON("job.result"), nullable=True))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cancel_requested: bool = False
    data_removed: bool = False
    attempts: int = 0
    # The id of the message that claimed the job last: that message's own retries may take it back while running.
    claimed_by: str | None = Field(default=None, max_length=64)
    # The X-Request-ID of the submission: worker and webhook log lines carry it (and the webhook sends it back).
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()


class IdempotencyRecord(SQLModel, table=True):
    """Remembers which jobs an Idempotency-Key created, and a hash of the parsed body it came with."""

    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    is_batch: bool = False
    job_ids: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class WebhookEvent(SQLModel, table=True):
    """The outbox: one row per event a job's webhook should receive, written in the same transaction as the
    job's terminal status. Its id is the `webhook-id`, fixed across retries and redeliveries. The body is built
    from the job at delivery time, so patient data is stored once (and erased with the job)."""

    __table_args__ = (
        UniqueConstraint("job_id", "type"),
        Index("ix_webhookevent_due", "status", "next_attempt_at"),
    )

    id: str = Field(default_factory=lambda: f"msg_{uuid.uuid4().hex}", primary_key=True, max_length=40)
    job_id: str = Field(foreign_key="job.id", index=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    type: str = Field(max_length=32)
    status: str = Field(default="pending", max_length=16)  # pending | delivered | failed | stopped
    attempts: int = 0  # all attempts, numbering the delivery log
    round_attempts: int = 0  # attempts since the event was (re)queued: indexes the retry schedule
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    # When a delivery task was last sent for the due attempt; the dispatcher resends only long after.
    dispatched_at: datetime | None = _time()
    # Held by the one task that is delivering now: a duplicated message finds it taken and does nothing.
    lease_until: datetime | None = _time()
    last_error: str | None = Field(default=None, max_length=500)


class WebhookDelivery(SQLModel, table=True):
    """One delivery attempt, as `GET /v1/jobs/{id}/deliveries` reports it."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(foreign_key="webhookevent.id", index=True, max_length=40)
    job_id: str = Field(foreign_key="job.id", index=True)
    attempt: int
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    duration_ms: float = 0.0


class WebhookSecret(SQLModel, table=True):
    """A tenant's signing secrets: the current one (`valid_until` null) and, after a rotation, the previous one
    until its grace period ends; while both are valid both sign."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    # Encrypted at rest (it must stay usable to sign, so it is not hashed): a leaked dump cannot forge webhooks.
    secret: str = Field(sa_column=Column(EncryptedText("webhooksecret.secret"), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    valid_until: datetime | None = _time()


class AuditEntry(SQLModel, table=True):
    """One access, append-only: who (key id), tenant, action, object, outcome, time, request id — for reads too.
    `hash` covers the entry and the previous entry's hash, so editing or deleting a row breaks the chain."""

    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    tenant_id: str | None = Field(default=None, max_length=36, index=True)
    key_id: str | None = Field(default=None, max_length=36)
    action: str = Field(max_length=100)
    # The job ids (or model name) the request touched: a batch names all of its jobs, comma-separated.
    object_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True, index=True))
    outcome: int
    request_id: str = Field(max_length=64)
    client: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's head (one row): updating it first serialises writers on every database, so the chain never
    forks under concurrent requests."""

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)
