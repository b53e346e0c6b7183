"""`python -m worker [celery worker options]`: start a worker with settings from the environment."""

from __future__ import annotations

import sys

from shared.queues import ALL_QUEUES
from shared.settings import get_settings
from worker.celery_app import create_celery


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    app = create_celery(settings)
    args = ["worker", "--pool=threads", f"--concurrency={settings.worker_concurrency}",
            f"--queues={','.join(ALL_QUEUES)}", f"--loglevel={settings.log_level}",
            "--without-gossip", "--without-mingle", "--task-events"]
    app.worker_main([*args, *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    main()
