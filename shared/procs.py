"""Child processes shared by `make run` (`shared.devstack`), the tests and the benchmark (`shared.localstack`)."""

from __future__ import annotations

import subprocess
import sys

from shared.settings import PROJECT_ROOT


def api_command(bind: str, *, threads: int, workers: int = 2) -> list[str]:
    """The API under gunicorn: threaded workers (Prefer: wait holds a thread), keep-alive beyond the 60 s wait."""
    config = str(PROJECT_ROOT / "api" / "gunicorn_config.py")
    return [sys.executable, "-m", "gunicorn", "--config", config, "api:create_app()", "--bind", bind,
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "75"]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    """SIGTERM, wait, then SIGKILL if it is still there; True if it had to be killed."""
    if proc.poll() is not None:
        return False
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
