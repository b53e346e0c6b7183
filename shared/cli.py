"""The `medq` command: run the parts (dev stack, workers, Flower); tenants, keys and audit in `shared.admin_cli`,
submit and jobs in `shared.client_cli`."""

from __future__ import annotations

import argparse
import os
import sys

from shared import admin_cli
from shared.db import init_db, make_engine
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
    sub.add_parser("init-db", help="create a new database (or check an existing one)").set_defaults(func=_init_db)
    db = sub.add_parser("db", help="the database schema: `upgrade` applies pending migrations, `current` shows "
                                   "the revision").add_subparsers()
    db.add_parser("upgrade", help="apply pending migrations (run once, before starting a new version)")\
        .set_defaults(func=_db_upgrade)
    db.add_parser("current", help="the database's schema revision and this medq's").set_defaults(func=_db_current)
    worker = sub.add_parser("worker", help="start a Celery worker (inference, or --webhooks for deliveries)")
    worker.add_argument("--webhooks", action="store_true", help="deliver webhooks and run their dispatcher")
    worker.set_defaults(func=_worker)
    flower = sub.add_parser("flower", help="start Flower (bound to 127.0.0.1 by default)")
    flower.add_argument("--port", type=int, default=5555)
    flower.add_argument("--address", default="127.0.0.1")
    flower.set_defaults(func=_flower)
    admin_cli.register(sub)
    from shared import client_cli  # submit / jobs: the HTTP client's verbs

    client_cli.register(sub)
    return parser


def _dev(args: argparse.Namespace) -> int:
    from shared import devstack

    return devstack.run(port=args.port, flower_port=args.flower_port)


def _init_db(_: argparse.Namespace) -> int:
    init_db(make_engine(get_settings().database_url))
    print("database ready")
    return 0


def _db_upgrade(_: argparse.Namespace) -> int:
    from shared import crypto
    from shared.migrate import upgrade

    settings = get_settings()
    crypto.install_from(settings)  # data migrations encrypt with the deployment's keys
    print(f"database at schema revision {upgrade(make_engine(settings.database_url))}")
    return 0


def _db_current(_: argparse.Namespace) -> int:
    from shared.migrate import current_revision, head_revision

    current, head = current_revision(make_engine(get_settings().database_url)), head_revision()
    state = "up to date" if current == head else f"this medq needs {head}: run `medq db upgrade`"
    print(f"{current or 'none (a new database, or one from before migrations)'} ({state})")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from worker.__main__ import main as worker_main

    worker_main(["webhooks"] if args.webhooks else [])
    return 0


def _flower(args: argparse.Namespace) -> int:
    from shared.bootstrap import flower_credentials
    from shared.settings import PROJECT_ROOT
    from worker.celery_app import create_celery

    settings = get_settings()
    credentials = flower_credentials(settings, PROJECT_ROOT / "var" / "flower.auth")
    app = create_celery(settings)
    # Flower shows task names and ids only (never patient data), but it can also revoke tasks: always behind auth.
    app.start(["flower", f"--port={args.port}", f"--address={args.address}", f"--basic-auth={credentials}"])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
