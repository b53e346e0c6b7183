"""`medq dev` (what `make run` calls): Redis, the API under gunicorn, the inference worker, the webhook worker
and Flower, all on loopback, stopped together on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared import crypto, redis_server
from shared.bootstrap import demo_key, flower_credentials
from shared.db import make_engine
from shared.localstack import wait_http
from shared.migrate import upgrade
from shared.procs import api_command, stop_process
from shared.settings import PROJECT_ROOT, Settings, get_settings


@dataclass
class Stack:
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis: redis_server.PrivateRedis | None = None

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.processes.items():  # all were signalled above, so they stop together
            if stop_process(proc):
                print(f"{name} did not stop in time; it was killed", file=sys.stderr)
        if self.redis is not None:
            self.redis.stop()


def _redis_url(settings: Settings, stack: Stack, var: Path) -> str:
    if "MEDQ_REDIS_URL" in os.environ:
        if redis_server.reachable(settings.redis_url):
            return settings.redis_url
        print(f"MEDQ_REDIS_URL={settings.redis_url} does not answer; starting a private redis-server")
    stack.redis = redis_server.start_private_redis(var / "redis")
    return stack.redis.url


def run(*, host: str = "127.0.0.1", port: int = 8000, flower_port: int = 5555) -> int:
    var = PROJECT_ROOT / "var"
    stack = Stack()
    # Explicit handlers: a shell may start us with SIGINT ignored, and SIGTERM should stop the stack too.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        settings = get_settings()
        env = {**os.environ, "MEDQ_REDIS_URL": _redis_url(settings, stack, var),
               "MEDQ_FLOWER_BASIC_AUTH": flower_credentials(settings, var / "flower.auth")}
        # A development database follows the code: apply pending schema migrations before anything starts.
        crypto.install_from(settings)  # data migrations encrypt with the configured keys
        upgrade(make_engine(settings.database_url))
        key = demo_key(get_settings(redis_url=env["MEDQ_REDIS_URL"]), var / "demo.key")
        python = sys.executable
        # Own sessions: Ctrl-C reaches only this process, which then stops the children in order.

        def spawn(args: list[str]) -> subprocess.Popen[bytes]:
            return subprocess.Popen(args, env=env, start_new_session=True)

        stack.processes["worker"] = spawn([python, "-m", "worker"])
        stack.processes["webhooks"] = spawn([python, "-m", "worker", "webhooks"])
        stack.processes["api"] = spawn([*api_command(f"{host}:{port}", threads=8), "--access-logfile", "-"])
        stack.processes["flower"] = spawn(
            [python, "-m", "shared.cli", "flower", "--port", str(flower_port), "--address", "127.0.0.1"])
        wait_http(f"http://{host}:{port}/readyz", list(stack.processes.values()))
        _banner(host, port, flower_port, key, env["MEDQ_REDIS_URL"], flower_auth=env["MEDQ_FLOWER_BASIC_AUTH"])
        while all(proc.poll() is None for proc in stack.processes.values()):
            time.sleep(0.5)
        print("a process exited; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping medq…")
        return 0
    finally:
        stack.stop()


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _banner(host: str, port: int, flower_port: int, key: str, redis_url: str, *, flower_auth: str) -> None:
    base = f"http://{host}:{port}"
    print(f"""
medq is up.
  API      {base}        (ready: {base}/readyz)
  Flower   http://127.0.0.1:{flower_port}  (basic auth {flower_auth}; kept in var/flower.auth)
  Redis    {redis_url}
  Demo key {key}

Try:
  curl -s -X POST {base}/v1/jobs -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
       -H "Prefer: wait=10" \\
       -d '{{"model": "disease-category", "input": {{"text": "Chest pain radiating to the left arm."}}}}'
  curl -s {base}/v1/models -H "Authorization: Bearer {key}"

Ctrl-C stops everything.
""", flush=True)
