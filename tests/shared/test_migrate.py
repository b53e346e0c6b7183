"""Schema migrations (alembic) on real databases: SQLite files and, where configured, fresh Postgres databases."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from shared import migrate
from shared.cli import main as medq
from shared.db import init_db, make_engine
from shared.errors import SchemaOutdated
from shared.keys import ensure_tenant
from shared.models import utcnow
from shared.webhook_secrets import signing_secrets
from tests.conftest import fresh_postgres_database

EXTRA_REVISION = '''"""test: a column added after the baseline"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.add_column(sa.Column("test_extra", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_column("test_extra")
'''


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: nothing created yet."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_postgres_database("medq_migrate") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_the_migrations_build_exactly_the_schema_the_models_describe(empty_engine: Engine) -> None:
    """The guard for every model change: it needs a migration, or this fails naming the difference."""
    with empty_engine.begin() as connection:
        command.upgrade(migrate._config(connection), "head")
    with empty_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       SQLModel.metadata)
    assert differences == []
    assert migrate.current_revision(empty_engine) == migrate.head_revision()


def test_a_new_database_is_created_and_stamped(empty_engine: Engine) -> None:
    init_db(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    init_db(empty_engine)  # every process calls it at start


def test_a_database_from_before_migrations_is_stamped_and_keeps_its_rows(empty_engine: Engine) -> None:
    SQLModel.metadata.create_all(empty_engine)  # what medq did before it had migrations
    with Session(empty_engine) as session:
        ensure_tenant(session, name="st-mary")
        session.commit()
    init_db(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM tenant")).scalars().all() == ["st-mary"]


def test_an_older_revision_is_refused_until_medq_db_upgrade(empty_engine: Engine, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    init_db(empty_engine)
    baseline = migrate.head_revision()
    # A newer medq: the same scripts plus one revision that adds a column.
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPTS, scripts)
    (scripts / "versions" / "9001_extra.py").write_text(EXTRA_REVISION.format(head=baseline))
    monkeypatch.setattr(migrate, "SCRIPTS", scripts)

    with pytest.raises(SchemaOutdated, match=rf"revision {baseline}.*needs 9001.*medq db upgrade"):
        init_db(empty_engine)
    assert migrate.upgrade(empty_engine) == "9001"
    assert "test_extra" in {c["name"] for c in inspect(empty_engine).get_columns("job")}
    init_db(empty_engine)


def test_upgrading_encrypts_webhook_secrets_stored_in_clear(empty_engine: Engine) -> None:
    with empty_engine.begin() as connection:  # a database at the baseline, as medq left it before 0002
        command.upgrade(migrate._config(connection), "0001")
    with Session(empty_engine) as session:
        tenant = ensure_tenant(session, name="st-mary")
        session.commit()
        tenant_id = tenant.id
    clear = "whsec_" + "A" * 44
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO webhooksecret (tenant_id, secret, created_at) VALUES (:t, :s, :c)"),
                           {"t": tenant_id, "s": clear, "c": "2026-11-01 00:00:00"})
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        stored = connection.execute(text("SELECT secret FROM webhooksecret")).scalar_one()
    assert stored.startswith("mq1:") and clear not in stored
    with Session(empty_engine) as session:
        assert signing_secrets(session, tenant_id=tenant_id, now=utcnow()) == [clear]
    migrate.upgrade(empty_engine)  # again: nothing to do, nothing encrypted twice
    with Session(empty_engine) as session:
        assert signing_secrets(session, tenant_id=tenant_id, now=utcnow()) == [clear]


def test_processes_starting_together_on_a_new_database_all_start(empty_engine: Engine) -> None:
    """Four processes (as the API, a worker and the webhook worker of a fresh deployment) initialise one new
    database at the same moment."""
    url = empty_engine.url.render_as_string(hide_password=False)
    code = "import sys; from shared.db import init_db, make_engine; init_db(make_engine(sys.argv[1]))"
    starts = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    failures = [p.communicate(timeout=120)[1] for p in starts if p.wait(timeout=120) != 0]
    assert failures == []
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            migrate.head_revision()]


def test_medq_db_upgrade_and_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDQ_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert medq(["db", "current"]) == 0
    assert "none" in capsys.readouterr().out
    assert medq(["db", "upgrade"]) == 0
    assert migrate.head_revision() in capsys.readouterr().out
    assert medq(["db", "current"]) == 0
    assert f"{migrate.head_revision()} (up to date)" in capsys.readouterr().out
