"""Webhook signing secrets: encrypted at rest, and rotation keeps the previous one signing for its grace."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.db import session_scope
from shared.keys import ensure_tenant
from shared.models import utcnow
from shared.webhook_secrets import current_secret, rotate, signing_secrets


def test_secrets_are_encrypted_in_the_database(store_engine: Engine) -> None:
    with session_scope(store_engine) as session:
        tenant_id = ensure_tenant(session, name="st-mary").id
        secret = current_secret(session, tenant_id=tenant_id).secret
    with store_engine.connect() as connection:
        stored = connection.execute(text("SELECT secret FROM webhooksecret")).scalar_one()
    assert secret.startswith("whsec_")
    assert stored.startswith("mq1:") and secret not in stored and secret.removeprefix("whsec_") not in stored


def test_after_a_rotation_both_sign_until_the_grace_ends(store_engine: Engine) -> None:
    with session_scope(store_engine) as session:
        tenant_id = ensure_tenant(session, name="st-mary").id
        old = current_secret(session, tenant_id=tenant_id).secret
        new, _ = rotate(session, tenant_id=tenant_id, now=utcnow(), grace=timedelta(hours=24))
    with session_scope(store_engine) as session:
        assert signing_secrets(session, tenant_id=tenant_id, now=utcnow()) == [new.secret, old]
        later = utcnow() + timedelta(hours=25)
        assert signing_secrets(session, tenant_id=tenant_id, now=later) == [new.secret]
