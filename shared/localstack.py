"""Starting the real parts on loopback — a private Redis, `python -m worker`, the API under gunicorn — for the
integration tests and the benchmark. (`make run` uses `shared.devstack`, which adds Flower and a banner.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared import redis_server
from shared.bootstrap import demo_key
from shared.procs import api_command, stop_process
from shared.settings import PROJECT_ROOT, get_settings


@dataclass
class LocalStack:
    base_url: str
    key: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(args, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=PROJECT_ROOT)
        self.processes[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            stop_process(proc, timeout=30)

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        # A further worker process gets its own metrics port; the first keeps the stack's.
        port = {} if name == "worker" else {"MEDQ_WORKER_METRICS_PORT": str(redis_server.free_port())}
        return self.start(name, [sys.executable, "-m", "worker"], env=port)

    def start_webhook_worker(self, name: str = "webhooks") -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-m", "worker", "webhooks"])

    def kill(self, name: str) -> None:
        """SIGKILL, as an OOM killer or a power cut would: no shutdown code runs."""
        proc = self.processes.pop(name)
        proc.kill()
        proc.wait(timeout=30)

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("*.log")))

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=timeout)


def wait_http(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a process exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {timeout:.0f}s")


@contextmanager
def local_stack(root: Path, *, redis_url: str | None = None, env: dict[str, str] | None = None,
                api_threads: int = 8, api_workers: int = 2, worker: bool = True, worker_processes: int = 1,
                webhooks: bool = False) -> Iterator[LocalStack]:
    """A database under `root`, Redis (given or private), the API on a free port, (by default) one inference
    worker process — `worker_processes` of them, named worker, worker-2, … — and (if asked) the webhook worker."""
    root.mkdir(parents=True, exist_ok=True)
    private = None if redis_url else redis_server.start_private_redis(root / "redis")
    port = redis_server.free_port()
    full_env = {**os.environ, "MEDQ_DATABASE_URL": f"sqlite:///{root / 'medq.db'}",
                "MEDQ_REDIS_URL": redis_url or (private.url if private else ""), "MEDQ_DEVICE": "cpu",
                "MEDQ_DEMO_KEY": "mq_local_stack_key", "PYTHONUNBUFFERED": "1",
                # Free ports, so stacks that overlap (and a developer's `make run`) never collide.
                "MEDQ_WORKER_METRICS_PORT": str(redis_server.free_port()),
                "MEDQ_WEBHOOK_METRICS_PORT": str(redis_server.free_port()), **(env or {})}
    key = demo_key(get_settings(database_url=full_env["MEDQ_DATABASE_URL"], demo_key=full_env["MEDQ_DEMO_KEY"]),
                   root / "demo.key")
    stack = LocalStack(base_url=f"http://127.0.0.1:{port}", key=key, env=full_env, logs=root)
    try:
        if worker:
            for n in range(1, worker_processes + 1):
                stack.start_worker("worker" if n == 1 else f"worker-{n}")
        if webhooks:
            stack.start_webhook_worker()
        api = stack.start("api", api_command(f"127.0.0.1:{port}", threads=api_threads, workers=api_workers))
        wait_http(f"{stack.base_url}/readyz", [api])
        yield stack
    except Exception:
        print(stack.dump_logs(), file=sys.stderr)
        raise
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        if private is not None:
            private.stop()
