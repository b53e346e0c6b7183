"""GET /v1/jobs/{id}/fhir and FHIR input to POST /v1/jobs, through Flask's test client with the real database."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from shared.models import Job, utcnow
from tests.conftest import RecordingEnqueuer, make_key
from tests.images import b64, png_bytes

TEXT = "Metastatic breast carcinoma with axillary lymph node involvement."
FHIR = "application/fhir+json"
PATIENT = {"resourceType": "Patient", "id": "123", "name": [{"family": "Doe", "given": ["Jane"]}],
           "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-555"}]}


def _document(content: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    attachment = {"contentType": "text/plain; charset=utf-8", "data": b64(TEXT.encode())}
    return {"resourceType": "DocumentReference", "status": "current",
            "identifier": [{"system": "urn:hospital:notes", "value": "NOTE-42"}],
            "content": [content if content is not None else {"attachment": attachment}], **extra}


def _bundle(document: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:2d6f1a7e-0c1b-4d8e-9f3a-111111111111", "resource": PATIENT},
        {"fullUrl": "urn:uuid:2d6f1a7e-0c1b-4d8e-9f3a-222222222222", "resource": document},
    ]}


def _post_fhir(client: FlaskClient, auth: dict[str, str], resource: Any, query: str = "model=disease-category") -> Any:
    return client.post(f"/v1/jobs?{query}", json=resource, headers={**auth, "Content-Type": FHIR})


def _submit(client: FlaskClient, auth: dict[str, str], **body: Any) -> str:
    response = client.post("/v1/jobs", json={"model": "disease-category", "input": {"text": TEXT}, **body},
                           headers=auth)
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["id"]
    return job_id


def _finish(app: Flask, job_id: str, *, succeeded: bool = True) -> None:
    """Store a result as a worker would."""
    labels = app.extensions["medq"].specs["disease-category"].labels
    scores = [{"label": label, "probability": p} for label, p in zip(labels, [0.6, 0.2, 0.1, 0.06, 0.04],
                                                                      strict=True)]
    result = {"label": labels[0], "scores": scores, "explanation": None, "indeterminate": False,
              "model": "disease-category", "model_version": "1.0.0", "model_sha256": "ab" * 32}
    now = utcnow()
    values: dict[str, Any] = {"status": "succeeded", "result": result} if succeeded else {
        "status": "failed", "error": {"type": "invalid_input", "detail": "test"}}
    with Session(app.extensions["medq"].engine) as s:
        s.exec(update(Job).where(col(Job.id) == job_id)
               .values(started_at=now - timedelta(seconds=1), finished_at=now, **values))
        s.commit()


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    return body


def _risk(bundle: dict[str, Any]) -> dict[str, Any]:
    risk: dict[str, Any] = next(e["resource"] for e in bundle["entry"]
                                if e["resource"]["resourceType"] == "RiskAssessment")
    return risk


def test_a_finished_job_is_a_fhir_bundle(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    job_id = _submit(client, auth, external_id="ACC-1")
    _finish(app, job_id)
    response = client.get(f"/v1/jobs/{job_id}/fhir", headers=auth)
    assert response.status_code == 200 and response.mimetype == FHIR
    bundle = response.get_json(force=True)
    Bundle.model_validate(bundle)
    risk = _risk(bundle)
    assert risk["status"] == "preliminary" and len(risk["prediction"]) == 5
    assert risk["subject"] == {"identifier": {"system": "urn:medq:external-id", "value": "ACC-1"}}
    assert response.headers["Preference-Applied"] == "return=representation"


def test_format_and_prefer_are_honoured(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    job_id = _submit(client, auth)
    _finish(app, job_id)
    url = f"/v1/jobs/{job_id}/fhir"
    assert client.get(f"{url}?_format=json", headers=auth).mimetype == FHIR
    assert client.get(f"{url}?_format=application/fhir+json", headers=auth).mimetype == FHIR
    plain = client.get(f"{url}?_format=application/json", headers=auth)
    assert plain.mimetype == "application/json" and plain.get_json()["resourceType"] == "Bundle"
    _problem(client.get(f"{url}?_format=xml", headers=auth), 406)
    minimal = client.get(url, headers={**auth, "Prefer": "return=minimal"})
    assert minimal.status_code == 200 and minimal.get_data() == b""
    assert minimal.headers["Preference-Applied"] == "return=minimal"
    pretty = client.get(f"{url}?_pretty=true", headers=auth).get_data(as_text=True)
    assert pretty.startswith("{\n")


def test_queued_and_failed_jobs_are_409(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    queued = _submit(client, auth)
    assert _problem(client.get(f"/v1/jobs/{queued}/fhir", headers=auth), 409)["status"] == 409
    failed = _submit(client, auth)
    _finish(app, failed, succeeded=False)
    _problem(client.get(f"/v1/jobs/{failed}/fhir", headers=auth), 409)


def test_deleted_job_is_410(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    job_id = _submit(client, auth)
    _finish(app, job_id)
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth).status_code == 204
    _problem(client.get(f"/v1/jobs/{job_id}/fhir", headers=auth), 410)


def test_another_tenants_job_is_404_like_an_unknown_one(client: FlaskClient, auth: dict[str, str],
                                                        app: Flask) -> None:
    job_id = _submit(client, auth)
    _finish(app, job_id)
    other = {"Authorization": f"Bearer {make_key(app.extensions['medq'].engine, 'beta')}"}
    theirs = _problem(client.get(f"/v1/jobs/{job_id}/fhir", headers=other), 404)
    unknown = _problem(client.get("/v1/jobs/00000000-0000-0000-0000-000000000000/fhir", headers=other), 404)
    assert {k: theirs[k] for k in ("type", "title", "status")} == {k: unknown[k] for k in ("type", "title", "status")}
    assert client.get(f"/v1/jobs/{job_id}/fhir").status_code == 401


def test_a_fhir_bundle_is_accepted_and_its_patient_becomes_the_subject(
        client: FlaskClient, auth: dict[str, str], app: Flask, enqueuer: RecordingEnqueuer) -> None:
    response = _post_fhir(client, auth, _bundle(_document()), "model=disease-category&priority=stat&explain=true")
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["external_id"] == "NOTE-42" and job["priority"] == "stat" and enqueuer.sent[-1][1] == "stat"
    with Session(app.extensions["medq"].engine) as s:
        row = s.get(Job, job["id"])
        assert row is not None and row.input_data == TEXT.encode() and row.explain
        assert row.subject == {"type": "Patient", "reference": "Patient/123",
                               "identifier": {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-555"}}
    _finish(app, job["id"])
    risk = _risk(client.get(f"/v1/jobs/{job['id']}/fhir", headers=auth).get_json(force=True))
    assert risk["subject"]["reference"] == "Patient/123"
    assert "Doe" not in str(risk), "no demographics are copied"


def test_a_bare_document_reference_keeps_its_subject_without_the_name(client: FlaskClient, auth: dict[str, str],
                                                                     app: Flask) -> None:
    document = _document(subject={"reference": "Patient/9", "display": "Jane Doe"})
    response = _post_fhir(client, auth, document)
    assert response.status_code == 202, response.get_json()
    with Session(app.extensions["medq"].engine) as s:
        row = s.get(Job, response.get_json()["id"])
        assert row is not None and row.subject == {"reference": "Patient/9"}


def test_an_image_attachment_goes_to_the_image_model(client: FlaskClient, auth: dict[str, str]) -> None:
    document = _document({"attachment": {"contentType": "image/png", "data": b64(png_bytes())}})
    assert _post_fhir(client, auth, document, "model=pneumonia-xray").status_code == 202
    problem = _problem(_post_fhir(client, auth, document, "model=disease-category"), 422)
    assert problem["errors"][0]["field"] == "input"


@pytest.mark.parametrize("content,field", [
    ({}, "Bundle.entry[1].resource.content[0].attachment"),
    ({"attachment": {"contentType": "application/pdf", "data": b64(b"%PDF")}},
     "Bundle.entry[1].resource.content[0].attachment.contentType"),
    ({"attachment": {"contentType": "text/plain", "data": "not base64!"}},
     "Bundle.entry[1].resource.content[0].attachment.data"),
    ({"attachment": {"contentType": "text/plain", "url": "https://example.org/note.txt"}},
     "Bundle.entry[1].resource.content[0].attachment.data"),
])
def test_bad_attachments_are_422_naming_the_fhir_path(client: FlaskClient, auth: dict[str, str], app: Flask,
                                                      content: dict[str, Any], field: str) -> None:
    problem = _problem(_post_fhir(client, auth, _bundle(_document(content))), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    with Session(app.extensions["medq"].engine) as s:
        assert not s.exec(select(Job)).all(), "a refused request leaves no job"


@pytest.mark.parametrize("resource,query,field", [
    (PATIENT, "model=disease-category", "resourceType"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": PATIENT}]}, "model=disease-category",
     "Bundle.entry"),
    ({k: v for k, v in _document().items() if k != "status"}, "model=disease-category", "DocumentReference.status"),
    (_document(date="yesterday"), "model=disease-category", "DocumentReference.date"),
    (_document(identifier=[{"value": "bad\nid"}]), "model=disease-category", "DocumentReference.identifier[0].value"),
    (_document(), "model=disease-category&colour=blue", "colour"),
    (_document(), "priority=stat", "model"),
])
def test_bad_fhir_submissions_are_422(client: FlaskClient, auth: dict[str, str], resource: dict[str, Any],
                                      query: str, field: str) -> None:
    problem = _problem(_post_fhir(client, auth, resource, query), 422)
    assert field in [e["field"] for e in problem["errors"]], problem


def test_json_subject_extension_is_checked(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {"model": "disease-category", "input": {"text": TEXT}, "subject": {"reference": 5}}
    problem = _problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert problem["errors"][0]["field"] == "subject"
    good = {**body, "subject": {"reference": "Patient/1"}}
    assert client.post("/v1/jobs", json=good, headers=auth).status_code == 202


def test_text_attachment_in_another_charset(client: FlaskClient, auth: dict[str, str], app: Flask) -> None:
    text = "Fièvre et toux productive, crépitants à la base droite."
    attachment = {"contentType": "text/plain; charset=iso-8859-1", "data": base64.b64encode(text.encode("latin-1"))
                  .decode()}
    response = _post_fhir(client, auth, _document({"attachment": attachment}))
    assert response.status_code == 202, response.get_json()
    with Session(app.extensions["medq"].engine) as s:
        row = s.get(Job, response.get_json()["id"])
        assert row is not None and row.input_data == text.encode()
