"""Fixtures: settings pointing at a temporary database, apps built from them, tenants with keys, and the
databases to run store tests on (SQLite always, Postgres when MEDQ_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from shared import redis_server
from shared.db import init_db, make_engine, session_scope
from shared.keys import create_api_key, ensure_tenant
from shared.settings import PROJECT_ROOT, Settings, get_settings
from shared.status import Priority
from tests.receiver import Receiver, running_receiver

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@dataclass
class RecordingEnqueuer:
    """Records what the API would publish; `fail` makes it behave like a broker that is down."""

    sent: list[tuple[list[str], Priority]] = field(default_factory=list)
    fail: bool = False

    def enqueue(self, job_ids: list[str], priority: Priority) -> None:
        from shared.errors import BrokerUnavailable

        if self.fail:
            raise BrokerUnavailable("broker down (test)", retry_after=5)
        self.sent.append((list(job_ids), priority))

    def ping(self) -> bool:
        return not self.fail


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MEDQ_TEST_REDIS_URL if it answers, else a private redis-server (make test installs it when missing)."""
    url = os.environ.get("MEDQ_TEST_REDIS_URL")
    if url and redis_server.reachable(url):
        yield url
        return
    server = redis_server.start_private_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(database_url=f"sqlite:///{tmp_path / 'medq.db'}", redis_url="redis://127.0.0.1:1/0",
                        model_dir=PROJECT_ROOT / "models", preload_models=False, device="cpu")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.database_url)
    init_db(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def enqueuer() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture
def app(settings: Settings, enqueuer: RecordingEnqueuer) -> Flask:
    from api import create_app

    return create_app(settings, enqueuer=enqueuer)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_key(engine: Engine, tenant: str, scopes: frozenset[str] = frozenset({"jobs:read", "jobs:write"})) -> str:
    with session_scope(engine) as session:
        t = ensure_tenant(session, name=tenant)
        _, raw = create_api_key(session, tenant_id=t.id, scopes=scopes)
    return raw


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    """Headers for a key of tenant 'alpha'."""
    return {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'alpha')}"}


@pytest.fixture(params=["sqlite", "postgres"])
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An initialised engine on each configured database; Postgres gets a fresh database per test."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        init_db(eng)
        yield eng
        eng.dispose()
        return
    with fresh_postgres_database("medq_test") as url:
        eng = make_engine(url)
        init_db(eng)
        yield eng
        eng.dispose()


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on MEDQ_TEST_POSTGRES_URL's server (dropped afterwards); skips the test
    when that variable is not set."""
    url = os.environ.get("MEDQ_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("MEDQ_TEST_POSTGRES_URL is not set (CI sets it when a local Postgres answers)")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A real HTTP webhook receiver on 127.0.0.1, shared by a module's tests."""
    with running_receiver() as running:
        yield running


def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the kit's data folder {SHARED_DATA} is absent (it exists beside the clone only in CI)")
    return SHARED_DATA
