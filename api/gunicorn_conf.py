"""gunicorn settings for the API (`gunicorn -c python:api.gunicorn_conf 'api:create_app()'`): Prometheus
multi-process mode, so `/metrics` from any worker process reports the whole API."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from prometheus_client import multiprocess

# Set in the master before workers fork (and before they import prometheus_client's metric classes).
_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="medq-prometheus-"))


def on_starting(server: Any) -> None:
    # Samples from an earlier run would be added to this one's: start empty.
    shutil.rmtree(_DIR, ignore_errors=True)
    os.makedirs(_DIR, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
