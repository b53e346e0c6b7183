"""The baseline: a plain one-task-per-item Celery worker as a tutorial would write it (prefork pool, default
prefetch and early acks), running the same no-op "model" and storing each result in the same table.
`python -m bench.plain_worker` with MEDQ_REDIS_URL and MEDQ_DATABASE_URL set."""

from __future__ import annotations

import sys

from celery import Celery
from sqlmodel import Session

from shared.db import make_engine
from shared.models import Job, utcnow
from shared.settings import get_settings

TASK = "bench.plain_job"
QUEUE = "bench.plain"


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("plain", broker=settings.redis_url)
    engine = make_engine(settings.database_url)

    @app.task(name=TASK)  # type: ignore[untyped-decorator]
    def plain_job(job_id: str) -> None:
        with Session(engine) as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            job.status, job.started_at = "running", utcnow()
            session.commit()
            job.result = {"label": "noop", "scores": []}
            job.status, job.finished_at = "succeeded", utcnow()
            session.add(job)
            session.commit()

    return app


def main() -> None:
    make_app().worker_main(["worker", "--pool=prefork", "--concurrency=2", f"--queues={QUEUE}",
                            "--loglevel=WARNING", "--without-gossip", "--without-mingle", *sys.argv[1:]])


if __name__ == "__main__":
    main()
