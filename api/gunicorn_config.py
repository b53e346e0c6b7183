"""gunicorn settings for the API (`gunicorn -c api/gunicorn_config.py 'api:create_app()'`): Prometheus
multi-process mode, so `/metrics` from any worker process reports the whole API.

Loaded by file path on purpose: `python:api.gunicorn_config` would import the `api` package (and with it
prometheus_client) in the master before the variable below is set."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

# Set in the master before workers fork and before anything imports prometheus_client: the library picks its
# multi-process value store once, at import, from this variable.
_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="medq-prometheus-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _DIR


def on_starting(server: Any) -> None:
    # Samples from an earlier run would be added to this one's: start empty.
    shutil.rmtree(_DIR, ignore_errors=True)
    os.makedirs(_DIR, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
