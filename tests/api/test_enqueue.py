"""The real Celery publisher against a real Redis, and against a port where nothing listens."""

from __future__ import annotations

import base64
import json

import pytest
import redis
from flask.testing import FlaskClient
from sqlmodel import Session, select

from api import create_app
from api.enqueue import CeleryEnqueuer
from shared.errors import BrokerUnavailable
from shared.models import Job
from shared.redis_server import free_port
from shared.settings import Settings
from shared.status import Priority
from tests.conftest import make_key


def test_message_carries_only_job_ids_on_the_priority_queue(settings: Settings, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete("medq.stat")
    CeleryEnqueuer(settings.model_copy(update={"redis_url": redis_url})).enqueue(["id-1", "id-2"], Priority.STAT)
    raw = client.lpop("medq.stat")
    assert raw is not None
    message = json.loads(raw)
    assert message["headers"]["task"] == "medq.run_jobs"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [["id-1", "id-2"]] and kwargs == {}
    assert message["headers"]["argsrepr"] == "[['id-1', 'id-2']]"


def test_dead_broker_raises_broker_unavailable(settings: Settings) -> None:
    dead = CeleryEnqueuer(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    with pytest.raises(BrokerUnavailable) as info:
        dead.enqueue(["x"], Priority.ROUTINE)
    assert info.value.retry_after == settings.retry_after_seconds
    assert dead.ping() is False


def test_api_with_a_dead_broker_answers_503_and_keeps_no_job(settings: Settings) -> None:
    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(dead)
    client: FlaskClient = app.test_client()
    key = make_key(app.extensions["medq"].engine, "alpha")
    response = client.post("/v1/jobs", json={"model": "disease-category", "input": {"text": "note"}},
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503 and response.headers["Retry-After"] == str(settings.retry_after_seconds)
    assert response.mimetype == "application/problem+json"
    with Session(app.extensions["medq"].engine) as s:
        assert s.exec(select(Job)).all() == []
    assert client.get("/readyz").status_code == 503
