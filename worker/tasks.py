"""Celery tasks: ids in, `worker.service` does the work. Patient data never travels in a message."""

from __future__ import annotations

from celery import Celery, Task

from shared.errors import PredictionFailed
from shared.queues import TASK_RUN_JOBS

MAX_RETRIES = 2


def register_tasks(app: Celery) -> None:
    @app.task(name=TASK_RUN_JOBS, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
    def run_jobs(self: Task, job_ids: list[str]) -> None:
        from worker.celery_app import runtime_for
        from worker.service import process_jobs

        final = self.request.retries >= MAX_RETRIES
        try:
            process_jobs(job_ids, runtime=runtime_for(self.app), final_attempt=final)
        except PredictionFailed as exc:
            raise self.retry(exc=exc, countdown=2 ** self.request.retries) from exc

    _ = run_jobs
