"""Celery tasks: ids in, `worker.service` does the work. Patient data never travels in a message."""

from __future__ import annotations

from celery import Celery, Task

from shared.errors import PredictionFailed
from shared.queues import TASK_DELIVER_WEBHOOK, TASK_PURGE_EXPIRED, TASK_RUN_JOBS

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

    @app.task(name=TASK_DELIVER_WEBHOOK, bind=True)  # type: ignore[untyped-decorator]
    def deliver_webhook(self: Task, event_id: str) -> None:
        # Retries are not Celery retries: the outbox row holds the schedule and the dispatcher sends them, so
        # a 10-hour back-off never sits in Redis past its visibility timeout.
        from worker.celery_app import delivery_for
        from worker.webhooks import deliver

        deliver(event_id, delivery=delivery_for(self.app))

    @app.task(name=TASK_PURGE_EXPIRED, bind=True)  # type: ignore[untyped-decorator]
    def purge_expired_data(self: Task) -> int:
        from worker.celery_app import delivery_for
        from worker.maintenance import purge

        return purge(delivery_for(self.app))

    _ = run_jobs, deliver_webhook, purge_expired_data
