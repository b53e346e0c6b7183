"""Webhook endpoints and submit-time checks: the SSRF guard answers 422 naming the reason, deliveries and
redelivery are tenant-scoped, the secret rotates with a grace period, the allowlist is for admins."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from api import create_app
from shared import outbox
from shared.db import session_scope
from shared.models import Job, WebhookEvent, utcnow
from shared.settings import Settings
from shared.worker_store import claim_jobs, store_results
from tests.conftest import RecordingEnqueuer, make_key

TEXT_JOB = {"model": "disease-category", "input": {"text": "Acute myocardial infarction with ST elevation."}}


@pytest.fixture
def app(settings: Settings, enqueuer: RecordingEnqueuer) -> Flask:
    return create_app(settings.model_copy(update={"webhook_allow": "127.0.0.2/32"}), enqueuer=enqueuer)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    return body


@pytest.mark.parametrize(("url", "reason"), [
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://10.0.0.8/hook", "private"),
    ("https://localhost:9443/hook", "loopback"),  # a name that resolves to 127.0.0.1, not allowlisted as a name
    ("https://192.168.1.20/hook", "private"),
    ("http://[::1]/hook", "loopback"),
    ("https://nowhere.invalid/hook", "does not resolve"),
    ("ftp://files.example/hook", "URL"),
])
def test_refused_webhook_urls_are_422_naming_the_reason(client: FlaskClient, auth: dict[str, str], app: Flask,
                                                        url: str, reason: str) -> None:
    body = {**TEXT_JOB, "webhook": {"url": url}}
    problem = _problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert problem["errors"][0]["field"].startswith("webhook") and reason in problem["detail"] + str(problem)
    batch = {"model": "disease-category", "items": [{"input": TEXT_JOB["input"]}], "webhook": {"url": url}}
    _problem(client.post("/v1/jobs/batch", json=batch, headers=auth), 422)
    with Session(app.extensions["medq"].engine) as s:
        assert s.exec(select(Job)).all() == []  # a refused request leaves no trace


def test_an_allowlisted_webhook_is_stored_with_its_events(client: FlaskClient, auth: dict[str, str],
                                                          app: Flask) -> None:
    hook = {"url": "http://127.0.0.2:8999/in", "events": ["job.failed"]}
    response = client.post("/v1/jobs", json={**TEXT_JOB, "webhook": hook, "result_format": "fhir"}, headers=auth)
    assert response.status_code == 202
    with Session(app.extensions["medq"].engine) as s:
        job = s.get(Job, response.get_json()["id"])
        assert job is not None and job.webhook_url == hook["url"] and job.webhook_events == ["job.failed"]
        assert job.result_format == "fhir"
    assert "webhook" not in response.get_json()  # the Job object stays the contract's


def test_bad_event_names_are_422(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {**TEXT_JOB, "webhook": {"url": "http://127.0.0.2:8999/in", "events": ["job.started"]}}
    problem = _problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert problem["errors"][0]["field"].startswith("webhook.events")


def _finish(app: Flask, job_id: str) -> None:
    with session_scope(app.extensions["medq"].engine) as s:
        claim_jobs(s, job_ids=[job_id], max_attempts=3)
        store_results(s, results={}, failures={job_id: ("invalid_input", "bad")})
        outbox.record_events(s, job_ids=[job_id])


def test_deliveries_and_redeliver(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    hook = {"url": "http://127.0.0.2:8999/in"}
    job_id = client.post("/v1/jobs", json={**TEXT_JOB, "webhook": hook}, headers=auth).get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth).get_json() == {"deliveries": []}
    _problem(client.post(f"/v1/jobs/{job_id}/redeliver", headers=auth), 409)  # nothing to resend yet
    _finish(app, job_id)
    engine = app.extensions["medq"].engine
    with session_scope(engine) as s:
        event = s.exec(select(WebhookEvent).where(WebhookEvent.job_id == job_id)).one()
        outbox.finish_attempt(s, event=event, outcome=outbox.Attempt(503, None, 12.5), now=utcnow(),
                              delays=(5.0,), jitter=0.0)
    (row,) = client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth).get_json()["deliveries"]
    assert row["event"] == "job.failed" and row["webhook_id"] == event.id and row["attempt"] == 1
    assert row["status_code"] == 503 and row["error"] is None and row["duration_ms"] == 12.5
    again = client.post(f"/v1/jobs/{job_id}/redeliver", headers=auth)
    assert again.status_code == 202 and again.get_json()["webhook_id"] == event.id
    other = {"Authorization": f"Bearer {make_key(engine, 'beta')}"}
    _problem(client.get(f"/v1/jobs/{job_id}/deliveries", headers=other), 404)
    _problem(client.post(f"/v1/jobs/{job_id}/redeliver", headers=other), 404)


def test_a_job_without_webhook_cannot_be_redelivered(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    job_id = client.post("/v1/jobs", json=TEXT_JOB, headers=auth).get_json()["id"]
    _finish(app, job_id)
    assert "no webhook" in _problem(client.post(f"/v1/jobs/{job_id}/redeliver", headers=auth), 409)["detail"]


def test_secret_is_per_tenant_and_rotates_with_grace(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    first = client.get("/v1/webhook-secret", headers=auth).get_json()
    assert first["secret"].startswith("whsec_")
    assert client.get("/v1/webhook-secret", headers=auth).get_json()["secret"] == first["secret"]
    other = {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'beta')}"}
    assert client.get("/v1/webhook-secret", headers=other).get_json()["secret"] != first["secret"]
    rotated = client.post("/v1/webhook-secret/rotate", headers=auth)
    assert rotated.status_code == 200
    body = rotated.get_json()
    assert body["secret"].startswith("whsec_") and body["secret"] != first["secret"]
    assert body["previous_valid_until"] is not None
    assert client.get("/v1/webhook-secret", headers=auth).get_json()["secret"] == body["secret"]
    reader = {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'alpha', frozenset({'jobs:read'}))}"}
    _problem(client.get("/v1/webhook-secret", headers=reader), 403)


def test_the_tenant_allowlist_is_for_admins_and_admits_private_targets(client: FlaskClient, auth: dict[str, str],
                                                                       app: Flask) -> None:
    body = {**TEXT_JOB, "webhook": {"url": "https://10.44.0.9/hook"}}
    _problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    _problem(client.put("/v1/webhook-allowlist", json={"entries": ["10.44.0.0/16"]}, headers=auth), 403)
    admin = {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'alpha', frozenset({'admin'}))}"}
    saved = client.put("/v1/webhook-allowlist", json={"entries": ["10.44.0.0/16"]}, headers=admin)
    assert saved.status_code == 200 and saved.get_json()["entries"] == ["10.44.0.0/16"]
    assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202
    _problem(client.put("/v1/webhook-allowlist", json={"entries": "10.0.0.0/8"}, headers=admin), 422)
