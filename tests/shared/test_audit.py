"""The audit chain on every configured database: appends chain, concurrent writers never fork it, and an edited,
removed or truncated entry is detected."""

import itertools
import threading
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from shared.audit import Access, append, verify_chain
from shared.db import session_scope
from shared.models import AuditEntry, AuditHead, utcnow


def _access(n: int, key: str = "k1") -> Access:
    return Access(at=utcnow(), tenant_id="t1", key_id=key, action="GET /v1/jobs/<job_id>", object_id=f"job-{n}",
                  outcome=200, request_id=f"r{n}", client="127.0.0.1")


def _write(engine: Engine, n: int) -> None:
    for i in range(n):
        with session_scope(engine) as s:
            append(s, _access(i))


def test_entries_chain_and_verify(store_engine: Engine) -> None:
    _write(store_engine, 5)
    with session_scope(store_engine) as s:
        report = verify_chain(s)
        rows = s.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()
    assert report.ok and report.entries == 5
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_concurrent_writers_do_not_fork_the_chain(store_engine: Engine) -> None:
    threads = [threading.Thread(target=_write, args=(store_engine, 15)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with session_scope(store_engine) as s:
        report = verify_chain(s)
    assert report.ok and report.entries == 60


def test_an_edited_entry_is_detected(store_engine: Engine) -> None:
    _write(store_engine, 4)
    with session_scope(store_engine) as s:  # someone hides who read job-2
        s.exec(update(AuditEntry).where(col(AuditEntry.seq) == 3).values(key_id="someone-else"))
    with session_scope(store_engine) as s:
        report = verify_chain(s)
    assert not report.ok and report.broken_at == 3 and "altered" in report.reason


def test_a_changed_time_is_detected(store_engine: Engine) -> None:
    _write(store_engine, 2)
    with session_scope(store_engine) as s:
        entry = s.get(AuditEntry, 1)
        assert entry is not None
        s.exec(update(AuditEntry).where(col(AuditEntry.seq) == 1).values(at=entry.at - timedelta(hours=1)))
    with session_scope(store_engine) as s:
        assert verify_chain(s).broken_at == 1


def test_removed_entries_are_detected(store_engine: Engine) -> None:
    _write(store_engine, 4)
    with session_scope(store_engine) as s:
        s.exec(delete(AuditEntry).where(col(AuditEntry.seq) == 2))
    with session_scope(store_engine) as s:
        assert "missing" in verify_chain(s).reason


def test_a_truncated_tail_is_detected(store_engine: Engine) -> None:
    _write(store_engine, 4)
    with session_scope(store_engine) as s:
        s.exec(delete(AuditEntry).where(col(AuditEntry.seq) == 4))
    with session_scope(store_engine) as s:
        report = verify_chain(s)
        head = s.get(AuditHead, 1)
    assert not report.ok and head is not None and head.seq == 4
