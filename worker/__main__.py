"""`python -m worker [celery worker options]`: start an inference worker with settings from the environment.
`python -m worker webhooks [options]`: start the webhook worker (deliveries and the dispatcher)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from shared import logs
from shared.queues import ALL_QUEUES, WEBHOOK_QUEUE
from shared.settings import get_settings
from worker.celery_app import create_celery


def main(argv: list[str] | None = None) -> None:
    argv = list(argv if argv is not None else sys.argv[1:])
    role = "webhooks" if argv[:1] == ["webhooks"] else "inference"
    settings = get_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    app = create_celery(settings, role=role)
    if role == "webhooks":
        # -B: the embedded beat schedules the retention purge (idempotent, so one per webhook worker is harmless).
        schedule = Path(tempfile.gettempdir()) / f"medq-celerybeat-{os.getpid()}"
        argv = ["-B", f"--schedule={schedule}", *argv[1:]]
        queues, concurrency, name = [WEBHOOK_QUEUE], settings.webhook_concurrency, f"webhooks-{os.getpid()}@%h"
    else:
        queues, concurrency, name = list(ALL_QUEUES), settings.worker_concurrency, f"inference-{os.getpid()}@%h"
    args = ["worker", "--pool=threads", f"--concurrency={concurrency}", f"--queues={','.join(queues)}",
            f"--loglevel={settings.log_level}", f"--hostname={name}",
            "--without-gossip", "--without-mingle", "--task-events"]
    app.worker_main([*args, *argv])


if __name__ == "__main__":
    main()
