"""Idempotency-Key records: same key + same parsed body → the same jobs; same key + another body → 409."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from shared.errors import IdempotencyConflict
from shared.models import IdempotencyRecord, utcnow


def request_hash(body: Any) -> str:
    """Hash of the parsed body: key order and whitespace do not matter ("equal JSON after parsing")."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lookup(
    session: Session, *, tenant_id: str, key: str, body_hash: str, is_batch: bool, ttl_hours: int
) -> list[str] | None:
    """Job ids created earlier under this key, None if the key is new (or expired, which frees it)."""
    record = session.exec(
        select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key)
    ).first()
    if record is None:
        return None
    if record.created_at < utcnow() - timedelta(hours=ttl_hours):
        session.delete(record)
        session.flush()
        return None
    if record.request_hash != body_hash or record.is_batch != is_batch:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was used with a different request body")
    return list(record.job_ids)


def remember(
    session: Session, *, tenant_id: str, key: str, body_hash: str, is_batch: bool, job_ids: list[str]
) -> None:
    session.add(IdempotencyRecord(tenant_id=tenant_id, key=key, request_hash=body_hash, is_batch=is_batch,
                                  job_ids=job_ids))
    session.flush()


def forget(session: Session, *, tenant_id: str, key: str) -> None:
    """Drop a record whose jobs were never accepted (the enqueue failed)."""
    record = session.exec(
        select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key)
    ).first()
    if record is not None:
        session.delete(record)
