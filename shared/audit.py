"""The audit trail: an append-only, hash-chained log of every API access. Each entry's hash covers its fields and
the previous entry's hash, so an edited, inserted or deleted row is detected by `verify_chain` (`medq audit
verify`). Writers serialise on the head row, so concurrent requests on several API processes never fork it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shared.models import AuditEntry, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True)
class Access:
    """What one request did, as the audit log records it."""

    at: datetime
    tenant_id: str | None
    key_id: str | None
    action: str
    object_id: str | None
    outcome: int
    request_id: str
    client: str | None = None


def entry_hash(prev_hash: str, seq: int, access: Access) -> str:
    fields = {"seq": seq, "at": access.at.isoformat(), "tenant_id": access.tenant_id, "key_id": access.key_id,
              "action": access.action, "object_id": access.object_id, "outcome": access.outcome,
              "request_id": access.request_id, "client": access.client}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}|{canonical}".encode()).hexdigest()


def ensure_head(session: Session) -> None:
    if session.get(AuditHead, 1) is None:
        try:
            with session.begin_nested():
                session.add(AuditHead(id=1))
        except IntegrityError:
            pass  # another process created it first


def append(session: Session, access: Access) -> AuditEntry:
    """Append one entry. Call in a transaction of its own: the head update must be its first statement, so it
    takes the write lock (SQLite) or the row lock (Postgres) before anything is read."""
    head = session.execute(
        update(AuditHead).where(col(AuditHead.id) == 1).values(seq=col(AuditHead.seq) + 1)
        .returning(col(AuditHead.seq), col(AuditHead.hash))
    ).one()
    seq, prev_hash = int(head[0]), str(head[1])
    digest = entry_hash(prev_hash, seq, access)
    entry = AuditEntry(seq=seq, at=access.at, tenant_id=access.tenant_id, key_id=access.key_id,
                       action=access.action, object_id=access.object_id, outcome=access.outcome,
                       request_id=access.request_id, client=access.client, prev_hash=prev_hash, hash=digest)
    session.add(entry)
    session.execute(update(AuditHead).where(col(AuditHead.id) == 1).values(hash=digest))
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    broken_at: int | None  # the first seq whose hash does not match, or None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(session: Session, *, page: int = 5000) -> ChainReport:
    """Recompute every hash in order; also check that no entry is missing and the head matches the last one."""
    prev, expected_seq, count = GENESIS, 1, 0
    for entry in _entries(session, page):
        access = Access(at=entry.at, tenant_id=entry.tenant_id, key_id=entry.key_id, action=entry.action,
                        object_id=entry.object_id, outcome=entry.outcome, request_id=entry.request_id,
                        client=entry.client)
        if entry.seq != expected_seq:
            return ChainReport(count, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev or entry_hash(prev, entry.seq, access) != entry.hash:
            return ChainReport(count, entry.seq, f"entry {entry.seq} was altered")
        prev, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != count or head.hash != prev):
        return ChainReport(count, count + 1, "entries after the last one were removed (the head disagrees)")
    return ChainReport(count, None)


def _entries(session: Session, page: int) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = session.exec(select(AuditEntry).where(col(AuditEntry.seq) > after)
                            .order_by(col(AuditEntry.seq)).limit(page)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
