"""Real processes: a private redis-server, a Celery worker (`python -m worker`) and the API under gunicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared import redis_server
from shared.bootstrap import demo_key
from shared.settings import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    base_url: str
    key: str
    env: dict[str, str]
    logs: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logs.glob("*.log")))


def start(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a process exited during start-up")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {timeout}s")


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    port = redis_server.free_port()
    env = {**os.environ, "MEDQ_DATABASE_URL": f"sqlite:///{root / 'medq.db'}", "MEDQ_REDIS_URL": redis_url,
           "MEDQ_DEVICE": "cpu", "MEDQ_DEMO_KEY": "mq_integration_test_key",
           "PYTHONUNBUFFERED": "1"}
    key = demo_key(get_settings(database_url=env["MEDQ_DATABASE_URL"], demo_key=env["MEDQ_DEMO_KEY"]),
                   root / "demo.key")
    procs = [
        start("worker", [sys.executable, "-m", "worker"], env, root),
        start("api", [sys.executable, "-m", "gunicorn", "api:create_app()", "--bind", f"127.0.0.1:{port}",
                      "--workers", "2", "--worker-class", "gthread", "--threads", "4"], env, root),
    ]
    stack = Stack(base_url=f"http://127.0.0.1:{port}", key=key, env=env, logs=root)
    try:
        wait_ready(f"{stack.base_url}/readyz", procs)
        yield stack
    except Exception:
        print(stack.dump_logs(), file=sys.stderr)
        raise
    finally:
        for proc in procs:
            stop(proc)
