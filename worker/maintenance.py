"""Periodic housekeeping run by the webhook worker's beat: the retention purge and the stuck-job sweep."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from shared.db import session_scope
from shared.errors import DatabaseUnavailable
from shared.models import utcnow
from shared.retention import purge_expired
from shared.status import Priority
from worker.sweeper import sweep
from worker.webhooks import Delivery

log = logging.getLogger(__name__)


def purge(delivery: Delivery) -> int:
    settings = delivery.settings
    with session_scope(delivery.engine) as session:
        count = purge_expired(session, now=utcnow(), default_days=settings.retention_days,
                              idempotency_hours=settings.idempotency_ttl_hours)
    log.info("retention: purged the data of %d job(s)", count)
    return count


def sweep_once(delivery: Delivery, send: Callable[[list[str], Priority], None]) -> dict[str, int]:
    """Requeue a dead worker's jobs and re-send lost messages (worker/sweeper.py). An outage costs one log line;
    the next sweep retries."""
    settings = delivery.settings
    marks = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        report = sweep(delivery.engine, running_after_s=settings.sweep_running_after_s,
                       queued_after_s=settings.sweep_queued_after_s, send=send, marks=marks)
    except (DatabaseUnavailable, redis.RedisError) as exc:
        log.warning("sweep skipped: %s", exc)
        return {"requeued_running": 0, "resent_queued": 0}
    finally:
        marks.close()
    return {"requeued_running": len(report.requeued_running), "resent_queued": len(report.resent_queued)}
