"""Alembic environment: migrations run on the connection shared/migrate.py hands over (never at import time, never
from a URL of their own), so `medq db upgrade` and the tests use exactly the engine medq uses."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from shared import models as _models  # noqa: F401  (registers the tables on SQLModel.metadata)


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # medq's column types (encrypted bytes/JSON, UTC datetimes) are stored as their plain implementation types:
    # render those, so a migration never imports application code that may change later.
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        autogen_context.imports.add(f"from sqlalchemy import {type(impl).__name__}")
        return repr(impl)
    return False


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("medq migrations run through `medq db upgrade` (shared/migrate.py), not the alembic CLI")
    context.configure(connection=connection, target_metadata=SQLModel.metadata, render_item=render_item,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
