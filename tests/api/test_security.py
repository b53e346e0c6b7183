"""Access control, one test per control: tenant isolation on every job endpoint, expired/revoked keys, scopes,
failed-authentication throttling, and the audit trail (distinct actors, reads audited, fail closed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, delete, select

from api import create_app
from shared.db import session_scope
from shared.keys import create_api_key, ensure_tenant, revoke_key
from shared.models import AuditEntry, AuditHead, utcnow
from shared.settings import Settings
from tests.conftest import RecordingEnqueuer, make_key

NOTE = {"model": "disease-category", "input": {"text": "Intermittent claudication of the left calf."}}


def _bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def _engine(app: Flask) -> Any:
    return app.extensions["medq"].engine


def test_another_tenant_gets_404_on_every_job_endpoint(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    job_id = client.post("/v1/jobs", json=NOTE, headers=auth).get_json()["id"]
    other = _bearer(make_key(_engine(app), "beta"))
    calls = [("get", f"/v1/jobs/{job_id}"), ("post", f"/v1/jobs/{job_id}/cancel"), ("delete", f"/v1/jobs/{job_id}"),
             ("get", f"/v1/jobs/{job_id}/fhir"), ("get", f"/v1/jobs/{job_id}/deliveries"),
             ("post", f"/v1/jobs/{job_id}/redeliver")]
    unknown = "00000000-0000-0000-0000-000000000000"
    for method, path in calls:
        theirs = getattr(client, method)(path, headers=other)
        missing = getattr(client, method)(path.replace(job_id, unknown), headers=auth)
        assert theirs.status_code == 404, (method, path, theirs.get_data(as_text=True))
        assert theirs.get_json()["title"] == missing.get_json()["title"]  # indistinguishable from unknown
    assert client.get("/v1/jobs", headers=other).get_json()["jobs"] == []
    assert client.get(f"/v1/jobs?external_id={job_id}", headers=other).get_json()["jobs"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["status"] == "queued"  # untouched


def test_expired_and_revoked_keys_are_401_at_once(client: FlaskClient, app: Flask) -> None:
    with session_scope(_engine(app)) as s:
        tenant = ensure_tenant(s, name="alpha").id
        _, expired = create_api_key(s, tenant_id=tenant, expires_at=utcnow() - timedelta(seconds=1))
        live_key, live = create_api_key(s, tenant_id=tenant)
    assert client.get("/v1/jobs", headers=_bearer(expired)).status_code == 401
    assert client.get("/v1/jobs", headers=_bearer(live)).status_code == 200
    with session_scope(_engine(app)) as s:
        revoke_key(s, key_id=live_key.id)
    assert client.get("/v1/jobs", headers=_bearer(live)).status_code == 401
    assert client.get("/v1/jobs", headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert client.get("/v1/jobs").status_code == 401


def test_missing_scope_is_403(client: FlaskClient, app: Flask) -> None:
    reader = _bearer(make_key(_engine(app), "alpha", frozenset({"jobs:read"})))
    writer = _bearer(make_key(_engine(app), "alpha", frozenset({"jobs:write"})))
    assert client.post("/v1/jobs", json=NOTE, headers=reader).status_code == 403
    assert client.get("/v1/jobs", headers=writer).status_code == 403
    assert client.get("/v1/webhook-allowlist", headers=writer).status_code == 403


@pytest.fixture
def limited_app(settings: Settings, enqueuer: RecordingEnqueuer, redis_url: str) -> Flask:
    """Real Redis for the shared counters; a fresh database (and so fresh addresses' counters) per test."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return create_app(settings.model_copy(update={"redis_url": redis_url, "auth_failures_per_minute": 5}),
                      enqueuer=enqueuer)


def test_repeated_bad_keys_from_one_client_are_throttled(limited_app: Flask) -> None:
    client = limited_app.test_client()
    good = _bearer(make_key(_engine(limited_app), "alpha"))
    for _ in range(5):
        assert client.get("/v1/jobs", headers=_bearer("mq_guess")).status_code == 401
    throttled = client.get("/v1/jobs", headers=_bearer("mq_guess"))
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert throttled.mimetype == "application/problem+json"
    assert client.get("/v1/jobs", headers=good).status_code == 429  # the client is blocked, not just the key
    elsewhere = limited_app.test_client()
    assert elsewhere.get("/v1/jobs", headers=good, environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 200


def test_two_keys_of_one_tenant_are_distinct_audit_actors_and_reads_are_audited(
        client: FlaskClient, app: Flask) -> None:
    first_raw, second_raw = make_key(_engine(app), "alpha"), make_key(_engine(app), "alpha")
    job_id = client.post("/v1/jobs", json=NOTE, headers=_bearer(first_raw)).get_json()["id"]
    read = client.get(f"/v1/jobs/{job_id}", headers={**_bearer(second_raw), "X-Request-ID": "ehr-corr-42"})
    assert read.headers["X-Request-ID"] == "ehr-corr-42"
    client.get(f"/v1/jobs/{job_id}", headers=_bearer("mq_wrong"))
    with Session(_engine(app)) as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.object_id == job_id).order_by(col(AuditEntry.seq))).all()
    assert [(r.action, r.outcome) for r in rows] == [("POST /v1/jobs", 202), ("GET /v1/jobs/<job_id>", 200),
                                                     ("GET /v1/jobs/<job_id>", 401)]
    assert rows[0].key_id != rows[1].key_id and None not in (rows[0].key_id, rows[1].key_id)
    assert rows[0].tenant_id == rows[1].tenant_id and rows[2].key_id is None
    assert rows[1].request_id == "ehr-corr-42"


def test_no_audit_no_access(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    with session_scope(_engine(app)) as s:
        s.exec(delete(AuditHead))  # the audit log cannot be written any more
    response = client.get("/v1/jobs", headers=auth)
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_a_batch_is_one_audit_entry_naming_every_job(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    batch = {"model": "disease-category", "items": [{"input": NOTE["input"]}] * 3}
    ids = [job["id"] for job in client.post("/v1/jobs/batch", json=batch, headers=auth).get_json()["jobs"]]
    with Session(_engine(app)) as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == "POST /v1/jobs/batch")).all()
    assert len(rows) == 1 and rows[0].object_id is not None and rows[0].object_id.split(",") == ids
