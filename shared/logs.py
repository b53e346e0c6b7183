"""Structured logs: one JSON object per line (python-json-logger) carrying the request id that follows a job from
the API (X-Request-ID) through the worker to its webhook. Log lines carry ids, never patient data."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

# The current request id (API: per request; worker: the ids of the jobs being handled).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("medq_request_id", default=None)

_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(process)d %(threadName)s"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (a test runner swaps it; a handler keeping the old one fails)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure(level: str, *, fmt: str = "json") -> None:
    """Replace the root handlers with one to stderr, JSON by default (`text` for people at a terminal)."""
    handler = _Stderr()
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(_FIELDS, rename_fields={"asctime": "time", "levelname": "level",
                                                                   "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.set_name("medq")
    root = logging.getLogger()
    # Replace only our own earlier handler: others (a test runner's capture, say) stay.
    root.handlers = [h for h in root.handlers if h.get_name() != "medq"] + [handler]
    root.setLevel(level)


@contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)
