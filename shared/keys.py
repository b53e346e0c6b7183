"""Tenants and API keys. A key is shown once; only its SHA-256 is stored. Keys are 256-bit random, so a plain
SHA-256 (not a slow password hash) is the right tool: there is nothing to brute-force."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from shared.errors import NotFound
from shared.models import ApiKey, Tenant, utcnow

KEY_PREFIX = "mq_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
ALL_SCOPES = frozenset({"jobs:read", "jobs:write", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (the audit actor), its tenant and scopes."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def ensure_tenant(session: Session, *, name: str) -> Tenant:
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_api_key(
    session: Session, *, tenant_id: str, scopes: frozenset[str] = frozenset({"jobs:read", "jobs:write"}),
    expires_at: datetime | None = None, raw_key: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its clear text (the only time the clear text exists)."""
    unknown = scopes - ALL_SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    raw = raw_key or generate_key()
    key = ApiKey(tenant_id=tenant_id, prefix=raw[:8], key_hash=hash_key(raw),
                 scopes=" ".join(sorted(scopes)), expires_at=expires_at)
    session.add(key)
    session.flush()
    return key, raw


def ensure_api_key(session: Session, *, tenant_id: str, raw_key: str, scopes: frozenset[str]) -> ApiKey:
    """The key with this clear text, created if missing (a fixed demo key from MEDQ_DEMO_KEY)."""
    existing = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key))).first()
    if existing is not None:
        return existing
    key, _ = create_api_key(session, tenant_id=tenant_id, scopes=scopes, raw_key=raw_key)
    return key


def list_keys(session: Session, *, tenant_id: str | None = None) -> list[tuple[ApiKey, str]]:
    """Keys with their tenant's name, oldest first (never the clear text: it is not stored)."""
    query = select(ApiKey, Tenant.name).join(Tenant, col(Tenant.id) == col(ApiKey.tenant_id))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return [(key, name) for key, name in session.exec(query.order_by(col(ApiKey.created_at))).all()]


def revoke_key(session: Session, *, key_id: str) -> ApiKey:
    """Revoke at once: the next request with the key is a 401 (keys are checked on every request, not cached)."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
    return key


def authenticate(session: Session, *, raw_key: str) -> Principal | None:
    """The principal for a clear-text key, or None if unknown, revoked or expired."""
    digest = hash_key(raw_key)
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == digest)).first()
    # The lookup is by digest, so timing reveals nothing about the key; compare_digest guards the equality.
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        return None
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    # Refreshed at most once a minute: a write on every request would serialise all requests on it.
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
        session.add(key)
    return Principal(key_id=key.id, tenant_id=key.tenant_id, scopes=frozenset(key.scopes.split()))
