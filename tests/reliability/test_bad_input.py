"""Property-based tests of the request schemas and of the API (Flask test client, recording enqueuer): any JSON
is either accepted or refused with a 4xx, never a 5xx, and schemas raise nothing but ValidationError.
(Schemathesis against the served /openapi.json: test_schemathesis.py.)"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.schemas import BatchCreate, JobCreate

FIELDS = ["model", "input", "text", "image_b64", "media_type", "external_id", "priority", "webhook", "url",
          "events", "items", "explain", "max_queue_seconds", "result_format", "subject"]
MODELS = ["disease-category", "pneumonia-xray", "", "nope", "x" * 101]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.sampled_from(MODELS)
keys = st.sampled_from(FIELDS) | st.text(max_size=10)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6), max_leaves=25)
# Bodies that look like requests, so validation goes deep, not just "not an object".
near_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS)},
    optional={"input": json_values | st.fixed_dictionaries({"text": json_values}),
              "items": st.lists(st.fixed_dictionaries({"input": json_values}), max_size=3) | json_values,
              "priority": st.sampled_from(["stat", "urgent", "routine", "STAT", ""]) | json_values,
              "external_id": json_values, "webhook": json_values, "explain": json_values,
              "max_queue_seconds": json_values, "result_format": json_values})
bodies = json_values | near_bodies

external_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)
text_inputs = st.fixed_dictionaries({"text": st.text(min_size=1, max_size=200)})
image_inputs = st.fixed_dictionaries({"image_b64": st.text(min_size=1, max_size=50),
                                      "media_type": st.sampled_from(["image/png", "image/jpeg", "application/dicom"])})
valid_jobs = st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=100), "input": text_inputs | image_inputs},
    optional={"external_id": external_ids, "priority": st.sampled_from(["stat", "urgent", "routine"]),
              "max_queue_seconds": st.integers(1, 7 * 24 * 3600), "explain": st.booleans(),
              "result_format": st.sampled_from(["json", "fhir"]),
              "webhook": st.fixed_dictionaries({"url": st.just("https://ris.example.org/hook"),
                                                "events": st.lists(st.sampled_from(["job.succeeded", "job.failed"]))})})


@given(bodies)
@settings(max_examples=300, deadline=None)
def test_schemas_raise_only_validation_errors(body: Any) -> None:
    for schema in (JobCreate, BatchCreate):
        with contextlib.suppress(ValidationError):  # anything else propagates and fails the test
            schema.model_validate(body)


@given(valid_jobs)
@settings(max_examples=200, deadline=None)
def test_valid_bodies_round_trip(body: dict[str, Any]) -> None:
    job = JobCreate.model_validate(body)
    assert JobCreate.model_validate(job.model_dump(mode="json", exclude_none=True)) == job
    batch = BatchCreate.model_validate({"model": body["model"], "items": [{"input": body["input"]}] * 2})
    assert BatchCreate.model_validate(batch.model_dump(mode="json", exclude_none=True)) == batch


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch"])
@given(body=bodies)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_json_never_gives_a_5xx(client: FlaskClient, auth: dict[str, str], path: str, body: Any) -> None:
    response = client.post(path, data=json.dumps(body), headers={**auth, "Content-Type": "application/json"})
    assert response.status_code < 500, (body, response.get_data(as_text=True))
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/problem+json")


@given(raw=st.binary(max_size=200))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_never_give_a_5xx(client: FlaskClient, auth: dict[str, str], raw: bytes) -> None:
    response = client.post("/v1/jobs", data=raw, headers={**auth, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
