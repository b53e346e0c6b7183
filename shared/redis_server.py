"""Finding or starting a Redis for `make run` and the tests: reuse a reachable URL, otherwise start a private
`redis-server` on a free loopback port that keeps its data under the given directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from shared.procs import stop_process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def reachable(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass
class PrivateRedis:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    data_dir: Path | None = None
    persist: bool = True

    def stop(self) -> None:
        stop_process(self.process, timeout=10)

    def crash(self) -> None:
        """SIGKILL: no final fsync, as a power cut would (the append-only file loses at most its last second)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> PrivateRedis:
        """A new redis-server on the same port and data directory (it replays the append-only file)."""
        if self.process.poll() is None:
            self.stop()
        if self.data_dir is None:
            raise RuntimeError("this Redis was not started with a data directory")
        return start_private_redis(self.data_dir, port=self.port, persist=self.persist)


def start_private_redis(data_dir: Path, *, port: int | None = None, persist: bool = True) -> PrivateRedis:
    """Start `redis-server` on 127.0.0.1; `persist` turns on the append-only file (fsync every second) so
    queued messages survive a Redis restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `apt-get install redis-server` "
                           "(Debian/Ubuntu) or `brew install redis`, or set MEDQ_REDIS_URL to a running Redis")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
            "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
            "--logfile", str(data_dir / "redis.log"), "--daemonize", "no"]
    # Its own session: a Ctrl-C meant for the caller must not kill Redis before the workers have stopped.
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not reachable(url, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    return PrivateRedis(url=url, port=port, process=process, data_dir=data_dir, persist=persist)
