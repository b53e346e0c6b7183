"""Resource limits, each answering its status code with a problem that says which limit: text characters and
tokens, image bytes, batch items, and per-tenant queue cap and rate (429 + Retry-After)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from shared.settings import Settings
from tests.conftest import RecordingEnqueuer, make_key
from tests.images import b64, png_bytes

NOTE = {"model": "disease-category", "input": {"text": "Haematemesis after heavy alcohol use."}}


def _limited(settings: Settings, enqueuer: RecordingEnqueuer, **limits: Any) -> tuple[FlaskClient, dict[str, str]]:
    app: Flask = create_app(settings.model_copy(update=limits), enqueuer=enqueuer)
    return app.test_client(), {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'alpha')}"}


def _problem(response: Any, status: int, word: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert response.mimetype == "application/problem+json" and word in body["detail"]


def test_text_characters_and_tokens(settings: Settings, enqueuer: RecordingEnqueuer) -> None:
    client, auth = _limited(settings, enqueuer, max_text_chars=400, max_text_tokens=40)
    long_text = {**NOTE, "input": {"text": "x" * 401}}
    _problem(client.post("/v1/jobs", json=long_text, headers=auth), 422, "characters")
    wordy = {**NOTE, "input": {"text": " ".join(["pancreatitis"] * 30)}}  # ~90 word pieces, < 400 characters
    _problem(client.post("/v1/jobs", json=wordy, headers=auth), 422, "tokens")
    assert client.post("/v1/jobs", json=NOTE, headers=auth).status_code == 202
    assert len(enqueuer.sent) == 1


def test_image_bytes_and_batch_items(settings: Settings, enqueuer: RecordingEnqueuer) -> None:
    client, auth = _limited(settings, enqueuer, max_image_bytes=500, max_batch_items=3)
    image = {"model": "pneumonia-xray", "input": {"image_b64": b64(png_bytes((64, 64))), "media_type": "image/png"}}
    _problem(client.post("/v1/jobs", json=image, headers=auth), 422, "bytes")
    batch = {"model": "disease-category", "items": [{"input": NOTE["input"]}] * 4}
    _problem(client.post("/v1/jobs/batch", json=batch, headers=auth), 422, "at most 3")


def test_a_tenants_queue_cap_is_429_with_retry_after(settings: Settings, enqueuer: RecordingEnqueuer) -> None:
    client, auth = _limited(settings, enqueuer, tenant_max_queued=3)
    batch = {"model": "disease-category", "items": [{"input": NOTE["input"]}] * 2}
    assert client.post("/v1/jobs/batch", json=batch, headers=auth).status_code == 202
    full = client.post("/v1/jobs/batch", json=batch, headers=auth)
    _problem(full, 429, "already queued")
    assert int(full.headers["Retry-After"]) > 0
    assert client.post("/v1/jobs", json=NOTE, headers=auth).status_code == 202  # exactly at the cap still fits


def test_a_tenants_rate_is_429_with_retry_after(settings: Settings, enqueuer: RecordingEnqueuer,
                                                redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    client, auth = _limited(settings, enqueuer, tenant_jobs_per_minute=3, redis_url=redis_url)
    for _ in range(3):
        assert client.post("/v1/jobs", json=NOTE, headers=auth).status_code == 202
    over = client.post("/v1/jobs", json=NOTE, headers=auth)
    _problem(over, 429, "a minute")
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    app_other = client.application
    other = {"Authorization": f"Bearer {make_key(app_other.extensions['medq'].engine, 'beta')}"}
    assert client.post("/v1/jobs", json=NOTE, headers=other).status_code == 202  # per tenant, not global


@pytest.mark.parametrize("size", [21 * 1024 * 1024])
def test_the_body_limit_is_413(client: FlaskClient, auth: dict[str, str], size: int) -> None:
    response = client.post("/v1/jobs", data=b"{" + b" " * size + b"}", headers={**auth,
                                                                            "Content-Type": "application/json"})
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
