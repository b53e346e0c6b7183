"""Periodic housekeeping run by the webhook worker's beat: the retention purge."""

from __future__ import annotations

import logging

from shared.db import session_scope
from shared.models import utcnow
from shared.retention import purge_expired
from worker.webhooks import Delivery

log = logging.getLogger(__name__)


def purge(delivery: Delivery) -> int:
    settings = delivery.settings
    with session_scope(delivery.engine) as session:
        count = purge_expired(session, now=utcnow(), default_days=settings.retention_days,
                              idempotency_hours=settings.idempotency_ttl_hours)
    log.info("retention: purged the data of %d job(s)", count)
    return count
