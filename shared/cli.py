"""The `medq` command: run the parts, manage tenants and keys, train the demo models."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

from shared.db import init_db, make_engine, session_scope
from shared.keys import ALL_SCOPES, create_api_key, ensure_tenant
from shared.models import utcnow
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medq", description="medq diagnosis-inference service")
    sub = parser.add_subparsers()
    dev = sub.add_parser("dev", help="run Redis, the API, a worker and Flower together (make run)")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--flower-port", type=int, default=5555)
    dev.set_defaults(func=_dev)
    sub.add_parser("init-db", help="create the database tables").set_defaults(func=_init_db)
    sub.add_parser("worker", help="start a Celery worker").set_defaults(func=_worker)
    flower = sub.add_parser("flower", help="start Flower (bound to 127.0.0.1 by default)")
    flower.add_argument("--port", type=int, default=5555)
    flower.add_argument("--address", default="127.0.0.1")
    flower.set_defaults(func=_flower)
    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers()
    create_tenant = tenants.add_parser("create", help="create a tenant")
    create_tenant.add_argument("name")
    create_tenant.set_defaults(func=_tenants_create)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers()
    create_key = keys.add_parser("create", help="create an API key (printed once)")
    create_key.add_argument("--tenant", required=True)
    create_key.add_argument("--scopes", nargs="+", default=["jobs:read", "jobs:write"], choices=sorted(ALL_SCOPES))
    create_key.add_argument("--expires-in", type=int, metavar="DAYS")
    create_key.set_defaults(func=_keys_create)
    return parser


def _dev(args: argparse.Namespace) -> int:
    from shared import devstack

    return devstack.run(port=args.port, flower_port=args.flower_port)


def _init_db(_: argparse.Namespace) -> int:
    init_db(make_engine(get_settings().database_url))
    print("database ready")
    return 0


def _worker(_: argparse.Namespace) -> int:
    from worker.__main__ import main as worker_main

    worker_main([])
    return 0


def _flower(args: argparse.Namespace) -> int:
    from worker.celery_app import create_celery

    app = create_celery(get_settings())
    app.start(["flower", f"--port={args.port}", f"--address={args.address}"])
    return 0


def _tenants_create(args: argparse.Namespace) -> int:
    engine = make_engine(get_settings().database_url)
    init_db(engine)
    with session_scope(engine) as session:
        tenant = ensure_tenant(session, name=args.name)
        print(f"tenant {tenant.name} ({tenant.id})")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    engine = make_engine(get_settings().database_url)
    init_db(engine)
    expires = utcnow() + timedelta(days=args.expires_in) if args.expires_in else None
    with session_scope(engine) as session:
        tenant = ensure_tenant(session, name=args.tenant)
        key, raw = create_api_key(session, tenant_id=tenant.id, scopes=frozenset(args.scopes), expires_at=expires)
        print(f"key id {key.id} for tenant {tenant.name}, scopes {key.scopes}; shown once:", file=sys.stderr)
    print(raw)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
