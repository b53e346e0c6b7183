"""Flower runs behind basic auth, on 127.0.0.1 by default."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from shared.procs import stop_process
from shared.redis_server import free_port
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_flower_needs_credentials(redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "MEDQ_REDIS_URL": redis_url, "MEDQ_FLOWER_BASIC_AUTH": "ops:correct-horse"}
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "flower", "--port", str(port)], env=env,
                            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "flower exited"
            try:
                anonymous = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "flower did not start"
                time.sleep(0.3)
        assert anonymous.status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "correct-horse"), timeout=5).status_code == 200
    finally:
        stop_process(proc)
