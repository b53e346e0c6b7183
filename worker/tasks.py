"""Celery tasks: ids in, `worker.service` does the work. Patient data never travels in a message."""

from __future__ import annotations

import logging

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
    @app.task(name=TASK_RUN_JOBS, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
    def run_jobs(self: Task, job_ids: list[str], db_retries: int = 0) -> None:
        from worker.celery_app import runtime_for
        from worker.service import process_jobs

        batch_retries = self.request.retries - db_retries
        try:
            process_jobs(job_ids, runtime=runtime_for(self.app), final_attempt=batch_retries >= MAX_RETRIES)
        except PredictionFailed as exc:
            raise self.retry(exc=exc, countdown=2 ** batch_retries, max_retries=MAX_RETRIES + db_retries) from exc
        except DatabaseUnavailable as exc:
            if db_retries >= DB_MAX_RETRIES:
                raise  # acknowledged as failed: the jobs stay queued/running and the sweeper requeues them
            raise self.retry(exc=exc, countdown=min(60, 10 * 2 ** db_retries), max_retries=None,
                             kwargs={"job_ids": job_ids, "db_retries": db_retries + 1}) from exc

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

    @app.task(name=TASK_SWEEP, bind=True)  # type: ignore[untyped-decorator]
    def sweep_stuck_jobs(self: Task) -> dict[str, int]:
        import redis

        from worker.celery_app import delivery_for
        from worker.sweeper import sweep

        delivery = delivery_for(self.app)
        settings = delivery.settings

        def send(ids: list[str], priority: Priority) -> None:
            self.app.send_task(TASK_RUN_JOBS, args=[ids], queue=queue_for(priority))

        marks = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            report = sweep(delivery.engine, running_after_s=settings.sweep_running_after_s,
                           queued_after_s=settings.sweep_queued_after_s, send=send, marks=marks)
        except (DatabaseUnavailable, redis.RedisError) as exc:  # an outage: one line, and the next sweep retries
            logging.getLogger(__name__).warning("sweep skipped: %s", exc)
            return {"requeued_running": 0, "resent_queued": 0}
        finally:
            marks.close()
        return {"requeued_running": len(report.requeued_running), "resent_queued": len(report.resent_queued)}

    _ = run_jobs, deliver_webhook, purge_expired_data, sweep_stuck_jobs
