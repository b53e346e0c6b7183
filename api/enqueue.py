"""Publishing job messages by task name. The API holds a Celery app only to send; it imports no task code."""

from __future__ import annotations

import logging

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from shared.errors import BrokerUnavailable
from shared.queues import TASK_RUN_JOBS, queue_for
from shared.redis_server import reachable
from shared.settings import Settings
from shared.status import Priority

log = logging.getLogger(__name__)


class CeleryEnqueuer:
    """Sends `medq.run_jobs(job_ids)` to the queue of the jobs' priority."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        timeout = settings.broker_connect_timeout_s
        self._celery = Celery("medq-api", broker=settings.redis_url, set_as_current=False)
        self._celery.conf.update(
            broker_transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout * 2},
            broker_connection_timeout=timeout,
            task_serializer="json",
        )

    def enqueue(self, job_ids: list[str], priority: Priority) -> None:
        try:
            self._celery.send_task(
                TASK_RUN_JOBS, args=[job_ids], queue=queue_for(priority),
                retry=True, retry_policy={"max_retries": 2, "interval_start": 0.1,
                                          "interval_step": 0.3, "interval_max": 0.5},
            )
        except (OperationalError, OSError, redis.RedisError) as exc:
            log.warning("broker unavailable, %d job(s) refused: %s", len(job_ids), exc)
            raise BrokerUnavailable("the job queue cannot be reached; nothing was created",
                                    retry_after=self._settings.retry_after_seconds) from exc

    def ping(self) -> bool:
        return reachable(self._settings.redis_url, timeout=self._settings.broker_connect_timeout_s)
