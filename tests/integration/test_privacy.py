"""Patient data stays out of the broker and the logs: what reaches Redis (every command, read with MONITOR) and
what the API and worker log carry ids, never the note."""

from __future__ import annotations

import base64
import re
import threading
import uuid

import pytest
import redis

from shared.localstack import LocalStack
from tests.integration.test_pipeline import poll

pytestmark = pytest.mark.integration


def _decoded(command: str) -> str:
    """The command plus every base64 run in it decoded (Celery message bodies travel base64-encoded)."""
    parts = [command]
    for run in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", command):
        try:
            parts.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "replace"))
        except ValueError:
            continue
    return "\n".join(parts)


def test_notes_never_reach_redis_or_the_logs(stack: LocalStack) -> None:
    marker = f"zebra{uuid.uuid4().hex[:12]}"  # a word no model, log format or id contains by chance
    note = f"Patient {marker} reports crushing chest pain radiating to the jaw."
    seen: list[str] = []
    ready, stop = threading.Event(), threading.Event()

    def monitor() -> None:
        with redis.Redis.from_url(stack.env["MEDQ_REDIS_URL"]).monitor() as m:
            ready.set()
            for command in m.listen():
                seen.append(str(command.get("command", "")))
                if stop.is_set():
                    return

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    assert ready.wait(10)
    with stack.client() as client:
        job_id = client.post("/v1/jobs", json={"model": "disease-category", "input": {"text": note},
                                                "external_id": "ACC-PRIV-1"}).json()["id"]
        batch = client.post("/v1/jobs/batch", json={"model": "disease-category",
                                                     "items": [{"input": {"text": note}}] * 3}).json()
        jobs = [poll(client, job_id)] + [poll(client, j["id"]) for j in batch["jobs"]]
    stop.set()
    redis.Redis.from_url(stack.env["MEDQ_REDIS_URL"]).ping()  # one more command, so the monitor loop ends
    watcher.join(10)
    assert all(job["status"] == "succeeded" for job in jobs)
    traffic = [_decoded(command) for command in seen]
    assert any(job_id in text for text in traffic), "the monitor saw the job's message"  # the check is live
    assert not [text for text in traffic if marker in text]
    logs = stack.dump_logs()
    assert marker not in logs and "crushing chest pain" not in logs
