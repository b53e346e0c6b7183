"""SQLModel tables. Times are stored as naive UTC (SQLite keeps no zone) and come back zone-aware."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


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
    input_data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    explain: bool = False
    max_queue_seconds: int | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cancel_requested: bool = False
    data_removed: bool = False
    attempts: int = 0
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
