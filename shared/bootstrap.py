"""Creating the database and the demo tenant with its key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import Engine

from shared.db import init_db, make_engine, session_scope
from shared.keys import ensure_api_key, ensure_tenant, generate_key
from shared.settings import Settings

DEMO_TENANT = "demo"
DEMO_SCOPES = frozenset({"jobs:read", "jobs:write"})


def demo_key(settings: Settings, key_file: Path) -> str:
    """The demo tenant's key: MEDQ_DEMO_KEY if set, else one generated once and kept in `key_file` (mode 600)
    so `make run` prints the same key every time."""
    raw = settings.demo_key
    if raw is None and key_file.exists():
        raw = key_file.read_text().strip() or None
    if raw is None:
        raw = generate_key()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(raw + "\n")
    engine = make_engine(settings.database_url)
    init_db(engine)
    ensure_demo_key(engine, raw)
    engine.dispose()
    return raw


def ensure_demo_key(engine: Engine, raw_key: str) -> None:
    """The `demo` tenant with this key (MEDQ_DEMO_KEY), created if missing."""
    with session_scope(engine) as session:
        tenant = ensure_tenant(session, name=DEMO_TENANT)
        ensure_api_key(session, tenant_id=tenant.id, raw_key=raw_key, scopes=DEMO_SCOPES)


def flower_credentials(settings: Settings, auth_file: Path) -> str:
    """`user:password` for Flower: MEDQ_FLOWER_BASIC_AUTH if set, else generated once into `auth_file` (600)."""
    if settings.flower_basic_auth:
        return settings.flower_basic_auth
    if auth_file.exists() and auth_file.read_text().strip():
        return auth_file.read_text().strip()
    value = f"medq:{secrets.token_urlsafe(18)}"
    auth_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(auth_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
