"""`medq tenants|keys|audit|data-key` against a real database file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from shared import cli
from shared.audit import Access, append
from shared.crypto import Keyring
from shared.db import init_db, make_engine, session_scope
from shared.keys import authenticate
from shared.models import AuditEntry, Tenant, utcnow


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    monkeypatch.setenv("MEDQ_DATABASE_URL", url)
    return url


def test_tenants_and_keys(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tenants", "create", "st-marys", "--retention-days", "90"]) == 0
    assert cli.main(["keys", "create", "--tenant", "st-marys", "--scopes", "jobs:read"]) == 0
    raw = capsys.readouterr().out.strip().splitlines()[-1]  # the key is the last line, alone
    engine = make_engine(database)
    with session_scope(engine) as s:
        principal = authenticate(s, raw_key=raw)
        tenant = s.get(Tenant, principal.tenant_id) if principal else None
    assert principal is not None and principal.scopes == frozenset({"jobs:read"})
    assert tenant is not None and tenant.retention_days == 90
    assert cli.main(["keys", "list", "--tenant", "st-marys"]) == 0
    listing = capsys.readouterr().out
    assert principal.key_id in listing and "active" in listing and raw not in listing  # never the key itself
    assert cli.main(["keys", "revoke", principal.key_id]) == 0
    with session_scope(engine) as s:
        assert authenticate(s, raw_key=raw) is None
    assert cli.main(["keys", "list"]) == 0 and "revoked" in capsys.readouterr().out
    assert cli.main(["keys", "revoke", "no-such-key"]) == 1


def test_audit_verify_reports_a_broken_chain(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(database)
    init_db(engine)
    for n in range(3):
        with session_scope(engine) as s:
            append(s, Access(at=utcnow(), tenant_id="t", key_id="k", action="GET /v1/jobs", object_id=None,
                             outcome=200, request_id=f"r{n}"))
    assert cli.main(["audit", "verify"]) == 0 and "3 entries" in capsys.readouterr().out
    with session_scope(engine) as s:
        s.exec(update(AuditEntry).where(col(AuditEntry.seq) == 2).values(outcome=404))
    assert cli.main(["audit", "verify"]) == 1
    assert "BROKEN at entry 2" in capsys.readouterr().err


def test_data_key_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data-key"]) == 0
    keys, key_id = (part.split("=", 1)[1] for part in capsys.readouterr().out.split())
    ring = Keyring.parse(keys, key_id)
    assert ring.decrypt(ring.encrypt(b"x", "c"), "c") == b"x" and not ring.is_development
