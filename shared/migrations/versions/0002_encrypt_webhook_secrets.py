"""Webhook signing secrets encrypted at rest (AES-GCM with the data keys, like job inputs and results).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# A data migration needs the data keys: `medq db upgrade` installs the keyring from the settings first.
from shared.crypto import PREFIX, keyring

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "webhooksecret.secret"  # the associated data the column type uses


def upgrade() -> None:
    with op.batch_alter_table("webhooksecret", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=100), type_=sa.Text(), existing_nullable=False)
    bind, ring = op.get_bind(), keyring()
    for row_id, secret in bind.execute(sa.text("SELECT id, secret FROM webhooksecret")).all():
        if not secret.startswith(f"{PREFIX}:"):  # safe to run again: what is encrypted stays as it is
            bind.execute(sa.text("UPDATE webhooksecret SET secret = :secret WHERE id = :id"),
                         {"secret": ring.encrypt(secret.encode(), COLUMN), "id": row_id})


def downgrade() -> None:
    bind, ring = op.get_bind(), keyring()
    for row_id, secret in bind.execute(sa.text("SELECT id, secret FROM webhooksecret")).all():
        if secret.startswith(f"{PREFIX}:"):
            bind.execute(sa.text("UPDATE webhooksecret SET secret = :secret WHERE id = :id"),
                         {"secret": ring.decrypt(secret, COLUMN).decode(), "id": row_id})
    with op.batch_alter_table("webhooksecret", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.Text(), type_=sa.String(length=100), existing_nullable=False)
