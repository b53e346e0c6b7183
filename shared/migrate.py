"""Schema migrations with alembic (scripts in shared/migrations/versions).

Every process checks the schema at start (`ensure_current`, called by `init_db`): a new database is created
from the models and stamped with the newest revision; a database at an older revision is refused with the
command that upgrades it. Processes never migrate by themselves — several of them start at once, and an
operator should choose when a schema changes — `medq db upgrade` does, once, before the new version starts.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from shared.errors import SchemaOutdated

SCRIPTS = Path(__file__).parent / "migrations"
_TRIES = 8
# alembic's commands run through module-level proxies (alembic.context, alembic.op): one at a time per process.
_ALEMBIC = threading.Lock()


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {SCRIPTS}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_current(engine: Engine) -> None:
    """Start-up check: create and stamp a new database; refuse one at an older revision."""
    from shared.db import check_schema

    revision, head = current_revision(engine), head_revision()
    if revision == head:
        check_schema(engine)
        return
    if revision is not None:
        raise SchemaOutdated(
            f"the database {_name(engine)} is at schema revision {revision}; this medq needs {head}: run "
            "`medq db upgrade` once (with this version's settings), then start the processes")
    # No revision: a new database, or one made before medq had migrations (its schema must then be the
    # baseline's, which check_schema verifies column by column).
    _create(engine, head)


def _create(engine: Engine, head: str) -> None:
    from shared.db import check_schema

    for attempt in range(_TRIES):
        try:
            SQLModel.metadata.create_all(engine)
            check_schema(engine)
            _stamp(engine, head)
            return
        except DBAPIError:
            # Processes starting together on a new database race to create the same tables (and to stamp it):
            # the losers' CREATE TABLE or INSERT fails; they wait and find the winner's work when they look again.
            if attempt == _TRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
            if current_revision(engine) == head:
                check_schema(engine)
                return


def upgrade(engine: Engine) -> str:
    """Apply every pending migration (a new or pre-migration database is created/checked and stamped)."""
    if current_revision(engine) is None:
        ensure_current(engine)
    else:
        with _ALEMBIC, engine.begin() as connection:
            command.upgrade(_config(connection), "head")
    return head_revision()


def _stamp(engine: Engine, head: str) -> None:
    with _ALEMBIC, engine.begin() as connection:
        if MigrationContext.configure(connection).get_current_revision() is None:
            command.stamp(_config(connection), head)


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
