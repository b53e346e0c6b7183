"""The job endpoints through Flask's test client, with the real database and a recording enqueuer."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from shared.models import IdempotencyRecord, Job
from tests.conftest import RecordingEnqueuer, make_key
from tests.images import b64, jpeg_bytes, png_bytes

TEXT_JOB = {"model": "disease-category", "input": {"text": "Acute myocardial infarction with ST elevation."}}


def _post(client: FlaskClient, auth: dict[str, str], body: Any, **headers: str) -> Any:
    return client.post("/v1/jobs", json=body, headers={**auth, **headers})


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status
    if status == 422:
        assert body["errors"], body
    return body


def _job_count(app: Flask) -> int:
    with Session(app.extensions["medq"].engine) as s:
        return len(s.exec(select(Job)).all())


def test_text_job_is_stored_then_enqueued_with_ids_only(client: FlaskClient, auth: dict[str, str],
                                                        enqueuer: RecordingEnqueuer, app: Flask) -> None:
    response = _post(client, auth, {**TEXT_JOB, "external_id": "ACC-123", "priority": "stat"})
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["queue_position"] == 0 and job["priority"] == "stat"
    assert job["model_version"] == "1.0.0" and job["external_id"] == "ACC-123" and job["result"] is None
    assert "input" not in job
    assert enqueuer.sent == [([job["id"]], "stat")]
    with Session(app.extensions["medq"].engine) as s:
        row = s.get(Job, job["id"])
        assert row is not None and row.input_data == TEXT_JOB["input"]["text"].encode()  # type: ignore[index]


@pytest.mark.parametrize("data,media_type", [(png_bytes(), "image/png"), (jpeg_bytes(), "image/jpeg")])
def test_image_job_as_json(client: FlaskClient, auth: dict[str, str], data: bytes, media_type: str) -> None:
    body = {"model": "pneumonia-xray", "input": {"image_b64": b64(data), "media_type": media_type}}
    assert _post(client, auth, body).status_code == 202


def test_image_job_as_multipart(client: FlaskClient, auth: dict[str, str], enqueuer: RecordingEnqueuer) -> None:
    import io

    response = client.post("/v1/jobs", headers=auth, content_type="multipart/form-data", data={
        "model": "pneumonia-xray", "external_id": "ACC-9", "priority": "urgent",
        "file": (io.BytesIO(png_bytes()), "xray.png", "image/png"),
    })
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["external_id"] == "ACC-9" and enqueuer.sent[0][1] == "urgent"


@pytest.mark.parametrize("body,field", [
    ({"model": "nope", "input": {"text": "x"}}, "model"),
    ({"model": "disease-category", "input": {"text": "   "}}, "input.text"),
    ({"model": "disease-category", "input": {"text": ""}}, "input.text"),
    ({"model": "disease-category", "input": {"image_b64": b64(png_bytes()), "media_type": "image/png"}}, "input"),
    ({"model": "pneumonia-xray", "input": {"text": "hello"}}, "input"),
    ({"model": "pneumonia-xray", "input": {"image_b64": "***", "media_type": "image/png"}}, "input.image_b64"),
    ({"model": "pneumonia-xray", "input": {"image_b64": b64(b"not an image"), "media_type": "image/png"}},
     "input.image_b64"),
    ({"model": "pneumonia-xray", "input": {"image_b64": b64(jpeg_bytes()), "media_type": "image/png"}},
     "input.image_b64"),
    ({"model": "pneumonia-xray", "input": {"image_b64": b64(png_bytes()), "media_type": "image/gif"}},
     "input.media_type"),
    ({**TEXT_JOB, "priority": "asap"}, "priority"),
    ({**TEXT_JOB, "external_id": "bad\nid"}, "external_id"),
    ({**TEXT_JOB, "external_id": "x" * 129}, "external_id"),
    ({**TEXT_JOB, "prioirty": "stat"}, "prioirty"),
    ({**TEXT_JOB, "max_queue_seconds": 0}, "max_queue_seconds"),
])
def test_invalid_jobs_are_422_naming_the_field(client: FlaskClient, auth: dict[str, str], app: Flask,
                                               body: dict[str, Any], field: str) -> None:
    problem = _problem(_post(client, auth, body), 422)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert _job_count(app) == 0


def test_too_long_text_is_refused(client: FlaskClient, auth: dict[str, str], settings: Any) -> None:
    body = {"model": "disease-category", "input": {"text": "a" * (settings.max_text_chars + 1)}}
    assert "100000" in _problem(_post(client, auth, body), 422)["detail"]


def test_image_over_the_pixel_limit_is_refused(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    app.extensions["medq"].settings.max_image_pixels = 100
    body = {"model": "pneumonia-xray", "input": {"image_b64": b64(png_bytes((20, 20))), "media_type": "image/png"}}
    assert "pixels" in _problem(_post(client, auth, body), 422)["detail"]


def test_malformed_json_unsupported_type_and_huge_body(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    bad = client.post("/v1/jobs", data="{oops", headers={**auth, "Content-Type": "application/json"})
    _problem(bad, 400)
    _problem(client.post("/v1/jobs", data="x", headers={**auth, "Content-Type": "text/plain"}), 415)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    _problem(client.post("/v1/jobs", data="x" * 2000, headers={**auth, "Content-Type": "application/json"}), 413)


def test_broker_down_is_503_and_leaves_nothing(client: FlaskClient, auth: dict[str, str], app: Flask,
                                               enqueuer: RecordingEnqueuer) -> None:
    enqueuer.fail = True
    problem = _problem(_post(client, auth, TEXT_JOB, **{"Idempotency-Key": "k1"}), 503)
    assert problem["type"].endswith("broker-unavailable")
    assert _job_count(app) == 0
    with Session(app.extensions["medq"].engine) as s:
        assert s.exec(select(IdempotencyRecord)).all() == []
    enqueuer.fail = False
    assert _post(client, auth, TEXT_JOB, **{"Idempotency-Key": "k1"}).status_code == 202


def test_idempotency_key_replays_or_conflicts(client: FlaskClient, auth: dict[str, str],
                                              enqueuer: RecordingEnqueuer) -> None:
    first = _post(client, auth, TEXT_JOB, **{"Idempotency-Key": "abc"})
    again = _post(client, auth, dict(reversed(list(TEXT_JOB.items()))), **{"Idempotency-Key": "abc"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"] and len(enqueuer.sent) == 1
    other = {**TEXT_JOB, "external_id": "different"}
    _problem(_post(client, auth, other, **{"Idempotency-Key": "abc"}), 409)


def test_auth_missing_bad_and_scope(client: FlaskClient, app: Flask) -> None:
    _problem(client.get("/v1/jobs"), 401)
    _problem(client.get("/v1/jobs", headers={"Authorization": "Bearer mq_wrong"}), 401)
    reader = make_key(app.extensions["medq"].engine, "alpha", frozenset({"jobs:read"}))
    headers = {"Authorization": f"Bearer {reader}"}
    assert client.get("/v1/jobs", headers=headers).status_code == 200
    _problem(client.post("/v1/jobs", json=TEXT_JOB, headers=headers), 403)


def test_other_tenants_job_is_404_everywhere(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    job_id = _post(client, auth, TEXT_JOB).get_json()["id"]
    other = {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'beta')}"}
    for method, path in [("get", f"/v1/jobs/{job_id}"), ("post", f"/v1/jobs/{job_id}/cancel"),
                         ("delete", f"/v1/jobs/{job_id}")]:
        _problem(getattr(client, method)(path, headers=other), 404)
    assert client.get("/v1/jobs", headers=other).get_json() == {"jobs": [], "next_cursor": None}
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["status"] == "queued"


def test_list_filters_and_cursor(client: FlaskClient, auth: dict[str, str]) -> None:
    ids = [_post(client, auth, {**TEXT_JOB, "external_id": f"E{i % 2}"}).get_json()["id"] for i in range(5)]
    page = client.get("/v1/jobs?limit=2", headers=auth).get_json()
    assert len(page["jobs"]) == 2 and page["next_cursor"]
    rest = client.get(f"/v1/jobs?limit=10&cursor={page['next_cursor']}", headers=auth).get_json()
    assert {j["id"] for j in page["jobs"] + rest["jobs"]} == set(ids) and rest["next_cursor"] is None
    assert len(client.get("/v1/jobs?external_id=E0", headers=auth).get_json()["jobs"]) == 3
    _problem(client.get("/v1/jobs?status=done", headers=auth), 422)
    _problem(client.get("/v1/jobs?limit=0", headers=auth), 422)
    _problem(client.get("/v1/jobs?cursor=%%%", headers=auth), 400)


def test_cancel_then_cancel_again_and_delete(client: FlaskClient, auth: dict[str, str]) -> None:
    job_id = _post(client, auth, TEXT_JOB).get_json()["id"]
    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).get_json()
    assert canceled["status"] == "canceled" and canceled["started_at"] is None and canceled["finished_at"]
    _problem(client.post(f"/v1/jobs/{job_id}/cancel", headers=auth), 409)
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth).status_code == 204
    gone = client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()
    assert gone["data_removed"] is True and gone["status"] == "canceled"


def test_prefer_wait_returns_202_when_the_job_is_not_done(client: FlaskClient, auth: dict[str, str]) -> None:
    response = _post(client, auth, TEXT_JOB, Prefer="wait=1")
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    assert _post(client, auth, TEXT_JOB, Prefer="wait=banana").status_code == 202


def test_batch_is_one_message_in_item_order(client: FlaskClient, auth: dict[str, str],
                                            enqueuer: RecordingEnqueuer) -> None:
    items = [{"input": {"text": f"note {i}"}, "external_id": f"B{i}"} for i in range(5)]
    response = client.post("/v1/jobs/batch", json={"model": "disease-category", "items": items}, headers=auth)
    assert response.status_code == 202
    jobs = response.get_json()["jobs"]
    assert [j["external_id"] for j in jobs] == [f"B{i}" for i in range(5)]
    assert enqueuer.sent == [([j["id"] for j in jobs], "routine")]


def test_batch_with_a_bad_item_creates_nothing(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    items = [{"input": {"text": "fine"}}] * 3 + [{"input": {"text": ""}}]
    problem = _problem(client.post("/v1/jobs/batch", json={"model": "disease-category", "items": items},
                                   headers=auth), 422)
    assert any(e["field"].startswith("items[3].input") for e in problem["errors"]), problem
    too_many = [{"input": {"text": "x"}}] * 257
    _problem(client.post("/v1/jobs/batch", json={"model": "disease-category", "items": too_many},
                         headers=auth), 422)
    assert _job_count(app) == 0
