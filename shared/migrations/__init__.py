"""Alembic migrations of medq's database (see shared/migrate.py; `medq db upgrade` applies them)."""
