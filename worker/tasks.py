"""Celery tasks: ids in, plain functions do the work. Patient data never travels in a message."""

from __future__ import annotations

from celery import Celery, Task

from shared.errors import DatabaseUnavailable, PredictionFailed
from shared.queues import TASK_DELIVER_WEBHOOK, TASK_PURGE_EXPIRED, TASK_RUN_JOBS, queue_for
from shared.status import Priority
from worker.sweeper import TASK_SWEEP

MAX_RETRIES = 2
# A database outage: the service has already retried its writes for about 30 s with the results in memory; the
# message is then retried this many times (10 s, 20 s, 40 s, 60 s…), counted apart from MAX_RETRIES so an outage
# does not use up a batch's retries. Beyond that the sweeper requeues the jobs once the database is back.
DB_MAX_RETRIES = 8


def register_tasks(app: Celery) -> None:
    app.task(name=TASK_RUN_JOBS, bind=True, max_retries=MAX_RETRIES)(run_jobs)
    app.task(name=TASK_DELIVER_WEBHOOK, bind=True)(deliver_webhook)
    app.task(name=TASK_PURGE_EXPIRED, bind=True)(purge_expired_data)
    app.task(name=TASK_SWEEP, bind=True)(sweep_stuck_jobs)


def run_jobs(self: Task, job_ids: list[str], db_retries: int = 0) -> None:
    from worker.celery_app import runtime_for
    from worker.service import process_jobs

    batch_retries = self.request.retries - db_retries
    try:
        # The task id stays the same across retries: it is the claim token.
        process_jobs(job_ids, runtime=runtime_for(self.app), final_attempt=batch_retries >= MAX_RETRIES,
                     token=self.request.id)
    except PredictionFailed as exc:
        raise self.retry(exc=exc, countdown=2 ** batch_retries, max_retries=MAX_RETRIES + db_retries) from exc
    except DatabaseUnavailable as exc:
        if db_retries >= DB_MAX_RETRIES:
            raise  # acknowledged as failed: the jobs stay queued/running and the sweeper requeues them
        raise self.retry(exc=exc, countdown=min(60, 10 * 2 ** db_retries), max_retries=None,
                         kwargs={"job_ids": job_ids, "db_retries": db_retries + 1}) from exc


def deliver_webhook(self: Task, event_id: str) -> None:
    # Retries are not Celery retries: the outbox row holds the schedule and the dispatcher sends them, so a
    # 10-hour back-off never sits in Redis past its visibility timeout.
    from worker.celery_app import delivery_for
    from worker.webhooks import deliver

    deliver(event_id, delivery=delivery_for(self.app))


def purge_expired_data(self: Task) -> int:
    from worker.celery_app import delivery_for
    from worker.maintenance import purge

    return purge(delivery_for(self.app))


def sweep_stuck_jobs(self: Task) -> dict[str, int]:
    from worker.celery_app import delivery_for
    from worker.maintenance import sweep_once

    def send(ids: list[str], priority: Priority) -> None:
        self.app.send_task(TASK_RUN_JOBS, args=[ids], queue=queue_for(priority))

    return sweep_once(delivery_for(self.app), send)
