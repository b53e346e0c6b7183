"""Per-tenant webhook signing secrets (`whsec_…`, the Standard Webhooks format) and their rotation: after a
rotation the previous secret keeps signing until its grace period ends, so receivers can switch without a gap."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, or_, select

from shared.models import Tenant, WebhookSecret


def generate_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def current_secret(session: Session, *, tenant_id: str) -> WebhookSecret:
    """The tenant's current secret, created on first use."""
    found = session.exec(select(WebhookSecret).where(WebhookSecret.tenant_id == tenant_id,
                                                     col(WebhookSecret.valid_until).is_(None))).first()
    if found is None:
        found = WebhookSecret(tenant_id=tenant_id, secret=generate_secret())
        session.add(found)
        session.flush()
    return found


def rotate(session: Session, *, tenant_id: str, now: datetime, grace: timedelta) -> tuple[WebhookSecret, datetime]:
    """A new current secret; the old one stays valid for `grace`. Returns the new one and when the old ends."""
    current_secret(session, tenant_id=tenant_id)  # so there is always a previous one to keep
    ends = now + grace
    session.exec(update(WebhookSecret).where(col(WebhookSecret.tenant_id) == tenant_id,
                                             col(WebhookSecret.valid_until).is_(None)).values(valid_until=ends))
    fresh = WebhookSecret(tenant_id=tenant_id, secret=generate_secret(), created_at=now)
    session.add(fresh)
    session.flush()
    return fresh, ends


def signing_secrets(session: Session, *, tenant_id: str, now: datetime) -> list[str]:
    """Every secret that signs now: the current one first, then any still in their grace period."""
    current_secret(session, tenant_id=tenant_id)
    rows = session.exec(
        select(WebhookSecret).where(WebhookSecret.tenant_id == tenant_id,
                                    or_(col(WebhookSecret.valid_until).is_(None),
                                        col(WebhookSecret.valid_until) > now))
        .order_by(col(WebhookSecret.valid_until).is_not(None), col(WebhookSecret.created_at).desc())
    ).all()
    return [row.secret for row in rows]


def tenant_allowlist(session: Session, *, tenant_id: str) -> list[str]:
    tenant = session.get(Tenant, tenant_id)
    return list(tenant.webhook_allow) if tenant is not None else []


def set_tenant_allowlist(session: Session, *, tenant_id: str, entries: list[str]) -> None:
    session.exec(update(Tenant).where(col(Tenant.id) == tenant_id).values(webhook_allow=entries))
