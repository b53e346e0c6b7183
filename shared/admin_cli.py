"""`medq tenants|keys|audit|data-key`: administration straight on the database (no API needed)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from sqlalchemy.engine import Engine

from shared.db import init_db, make_engine, session_scope
from shared.errors import NotFound
from shared.keys import ALL_SCOPES, create_api_key, ensure_tenant, list_keys, revoke_key
from shared.models import utcnow
from shared.settings import get_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("data-key", help="print a new encryption-at-rest key for MEDQ_DATA_KEYS").set_defaults(
        func=_data_key)
    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers()
    create_tenant = tenants.add_parser("create", help="create a tenant (or change its retention)")
    create_tenant.add_argument("name")
    create_tenant.add_argument("--retention-days", type=int, metavar="DAYS",
                               help="purge finished jobs' data after DAYS (0: keep; default MEDQ_RETENTION_DAYS)")
    create_tenant.set_defaults(func=_tenants_create)
    _keys(sub.add_parser("keys", help="manage API keys").add_subparsers())
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers()
    audit.add_parser("verify", help="check the audit log's hash chain").set_defaults(func=_audit_verify)


def _keys(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create_key = keys.add_parser("create", help="create an API key (printed once)")
    create_key.add_argument("--tenant", required=True)
    create_key.add_argument("--scopes", nargs="+", default=["jobs:read", "jobs:write"], choices=sorted(ALL_SCOPES))
    create_key.add_argument("--expires-in", type=int, metavar="DAYS")
    create_key.set_defaults(func=_keys_create)
    list_keys_cmd = keys.add_parser("list", help="list API keys (prefix, scopes, state; never the key)")
    list_keys_cmd.add_argument("--tenant")
    list_keys_cmd.set_defaults(func=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an API key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_keys_revoke)


def _engine() -> Engine:
    engine = make_engine(get_settings().database_url)
    init_db(engine)
    return engine


def _data_key(_: argparse.Namespace) -> int:
    from shared.crypto import new_key
    from shared.models import new_id

    key_id = new_id()[:8]
    print(f"MEDQ_DATA_KEYS={key_id}:{new_key()}  MEDQ_DATA_KEY_ID={key_id}")
    print("Keep older keys in MEDQ_DATA_KEYS (comma-separated) until no row uses them.", file=sys.stderr)
    return 0


def _tenants_create(args: argparse.Namespace) -> int:
    engine = _engine()
    with session_scope(engine) as session:
        tenant = ensure_tenant(session, name=args.name)
        if args.retention_days is not None:
            tenant.retention_days = args.retention_days
            session.add(tenant)
        print(f"tenant {tenant.name} ({tenant.id}), retention {tenant.retention_days or 'default'} days")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    engine = _engine()
    expires = utcnow() + timedelta(days=args.expires_in) if args.expires_in else None
    with session_scope(engine) as session:
        tenant = ensure_tenant(session, name=args.tenant)
        key, raw = create_api_key(session, tenant_id=tenant.id, scopes=frozenset(args.scopes), expires_at=expires)
        print(f"key id {key.id} for tenant {tenant.name}, scopes {key.scopes}; shown once:", file=sys.stderr)
    print(raw)
    return 0


def _audit_verify(_: argparse.Namespace) -> int:
    from shared.audit import verify_chain

    engine = _engine()
    with session_scope(engine) as session:
        report = verify_chain(session)
    if report.ok:
        print(f"audit chain intact: {report.entries} entries")
        return 0
    print(f"audit chain BROKEN at entry {report.broken_at}: {report.reason} ({report.entries} entries verified "
          "before it)", file=sys.stderr)
    return 1


def _keys_list(args: argparse.Namespace) -> int:
    engine = _engine()
    with session_scope(engine) as session:
        tenant_id = ensure_tenant(session, name=args.tenant).id if args.tenant else None
        rows = list_keys(session, tenant_id=tenant_id)
        now = utcnow()
        print(f"{'id':36}  {'tenant':16} {'prefix':10} {'state':8} {'last used':20} scopes")
        for key, tenant in rows:
            state = ("revoked" if key.revoked_at else
                     "expired" if key.expires_at and key.expires_at <= now else "active")
            used = key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never"
            print(f"{key.id:36}  {tenant:16} {key.prefix + '…':10} {state:8} {used:20} {key.scopes}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    engine = _engine()
    try:
        with session_scope(engine) as session:
            key = revoke_key(session, key_id=args.key_id)
            print(f"key {key.id} ({key.prefix}…) revoked")
    except NotFound as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    return 0
