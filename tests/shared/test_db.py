"""Start-up refuses a database made by an older medq instead of failing later on a missing column."""

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared.db import init_db, make_engine
from shared.errors import SchemaOutdated


def test_an_older_schema_is_refused_with_the_missing_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    init_db(make_engine(url))
    old = create_engine(url)
    with old.begin() as conn:  # as the previous release left it: no request_id on jobs
        conn.execute(text("ALTER TABLE job DROP COLUMN request_id"))
    with pytest.raises(SchemaOutdated, match=r"job\.request_id"):
        init_db(make_engine(url))


def test_a_current_schema_starts_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    init_db(make_engine(url))
    init_db(make_engine(url))  # every process calls it at start
