"""The webhook dispatcher: a thread in the webhook worker that sends a delivery task for every event that is
due — retries whose back-off has passed, events recorded by the API (cancel, expiry) and events whose first
message was lost (a worker killed between storing a result and sending the task)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine

from shared import outbox
from shared.db import session_scope
from shared.models import utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)

Send = Callable[[list[str]], None]


def dispatch_due(engine: Engine, settings: Settings, send: Send) -> int:
    """Send tasks for what is due now; returns how many."""
    with session_scope(engine) as session:
        ids = outbox.claim_due(session, now=utcnow(), redispatch_after_s=settings.webhook_redispatch_after_s)
    if ids:
        send(ids)
    return len(ids)


class Dispatcher:
    """Polls `dispatch_due` until stopped. A failing poll (database or broker down) is logged and retried:
    nothing is lost, since the events stay pending in the database."""

    def __init__(self, engine: Engine, settings: Settings, send: Send) -> None:
        self._engine, self._settings, self._send = engine, settings, send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medq-webhook-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = dispatch_due(self._engine, self._settings, self._send)
            except Exception as exc:  # the loop must outlive any outage; the events wait in the database
                log.warning("webhook dispatch failed, will retry: %s", exc)
                sent = 0
            if not sent:
                self._stop.wait(self._settings.webhook_poll_interval_s)
