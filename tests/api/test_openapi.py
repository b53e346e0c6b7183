"""The OpenAPI 3.1 document (`/openapi.json`) and its rendering (`/docs`): valid, complete against the contract and
the app's own routes, every error problem+json, an example for every body, and the examples valid themselves."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import BaseModel

from api import openapi
from shared import schemas
from shared.settings import PROJECT_ROOT, get_settings
from tests.conftest import RecordingEnqueuer

CONTRACT = PROJECT_ROOT.parent / "shared" / "contract" / "api-v1.md"
METHODS = {"get", "put", "post", "delete", "patch"}
PROBLEM_JSON = "application/problem+json"
# The contract's routes and their success statuses, for when the kit's contract is not beside the project.
ROUTES: dict[tuple[str, str], str] = {
    ("post", "/v1/jobs"): "202", ("post", "/v1/jobs/batch"): "202", ("get", "/v1/jobs"): "200",
    ("get", "/v1/jobs/{job_id}"): "200", ("post", "/v1/jobs/{job_id}/cancel"): "200",
    ("delete", "/v1/jobs/{job_id}"): "204", ("get", "/v1/jobs/{job_id}/fhir"): "200",
    ("get", "/v1/jobs/{job_id}/deliveries"): "200", ("post", "/v1/jobs/{job_id}/redeliver"): "202",
    ("get", "/v1/webhook-secret"): "200", ("post", "/v1/webhook-secret/rotate"): "200",
    ("get", "/v1/webhook-allowlist"): "200", ("put", "/v1/webhook-allowlist"): "200",
    ("get", "/v1/models"): "200", ("get", "/v1/models/{name}"): "200",
    ("get", "/healthz"): "200", ("get", "/readyz"): "200", ("get", "/metrics"): "200",
    ("get", "/openapi.json"): "200", ("get", "/docs"): "200", ("get", "/"): "200",
}
# Error statuses whose body is not a problem: /readyz's 503 is its readiness report (the request itself was fine).
NOT_PROBLEMS = {("get", "/readyz", "503")}


@pytest.fixture(scope="module")
def docs_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from api import create_app

    folder = tmp_path_factory.mktemp("openapi")
    settings = get_settings(database_url=f"sqlite:///{folder / 'medq.db'}", redis_url="redis://127.0.0.1:1/0",
                            model_dir=PROJECT_ROOT / "models", preload_models=False, device="cpu")
    yield create_app(settings, enqueuer=RecordingEnqueuer())


@pytest.fixture(scope="module")
def doc(docs_app: Flask) -> dict[str, Any]:
    response = docs_app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _shape(path: str) -> str:
    """Path parameters compared by position only: the contract's `{id}` is the app's `{job_id}`."""
    return re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path)


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, _shape(path)) for method, path, _ in _operations(doc)}


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "medq" and doc["info"]["version"] == openapi.package_version()
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "medq API key",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]}


def test_every_route_of_the_contract_is_documented(doc: dict[str, Any]) -> None:
    missing = {(m, _shape(p)) for m, p in ROUTES} - _documented(doc)
    assert not missing, f"routes of the contract missing from the spec: {sorted(missing)}"


def test_every_route_named_in_the_kit_contract_is_documented(doc: dict[str, Any]) -> None:
    if not CONTRACT.is_file():
        pytest.skip(f"the kit's contract is not at {CONTRACT}; the hard-coded route list still runs")
    named = {(m.lower(), _shape(p)) for m, p in re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/[^\s`?]*)",
                                                          CONTRACT.read_text())}
    assert len(named) >= 15, named  # the pattern still reads the contract
    missing = named - _documented(doc)
    assert not missing, f"routes of {CONTRACT} missing from the spec: {sorted(missing)}"


def test_every_v1_route_of_the_app_is_documented(docs_app: Flask, doc: dict[str, Any]) -> None:
    """A new /v1 view must carry `@documented(...)` (spectree runs in strict mode: undecorated views are left out)."""
    served = {(method.lower(), _shape(rule.rule)) for rule in docs_app.url_map.iter_rules()
              if rule.rule.startswith("/v1") for method in rule.methods or () if method.lower() in METHODS}
    assert served, "no /v1 routes found"
    missing = served - _documented(doc)
    assert not missing, f"undocumented /v1 routes (decorate them with api.openapi.documented): {sorted(missing)}"
    assert not [r.rule for r in docs_app.url_map.iter_rules() if r.rule.startswith("/apidoc")]


def test_every_operation_documents_its_success_and_auth(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        responses = operation["responses"]
        assert operation["summary"] and operation["operationId"], (method, path)
        assert any(code.startswith("2") for code in responses), (method, path)
        expected = ROUTES.get((method, path))
        assert expected is None or expected in responses, (method, path, expected)
        if path.startswith("/v1"):
            assert "security" not in operation and doc["security"] == [{"bearerAuth": []}], (method, path)
            assert {"401", "403", "429", "503"} <= responses.keys(), (method, path)
        else:
            assert operation["security"] == [], (method, path)


def test_every_error_is_problem_json_and_named_headers_are_there(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        for code, answer in operation["responses"].items():
            assert "X-Request-ID" in answer["headers"], (method, path, code)
            if code in ("429", "503"):
                assert "Retry-After" in answer["headers"], (method, path, code)
            if int(code) < 400 or (method, path, code) in NOT_PROBLEMS:
                continue
            assert list(answer["content"]) == [PROBLEM_JSON], (method, path, code)
            assert answer["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_the_contract_headers_and_content_types_are_documented(doc: dict[str, Any]) -> None:
    create = doc["paths"]["/v1/jobs"]["post"]
    names = {p["$ref"].rsplit("/", 1)[-1] for p in create["parameters"] if "$ref" in p}
    assert {"Idempotency-Key", "Prefer-wait", "X-Request-ID"} <= names
    assert set(create["requestBody"]["content"]) == {"application/json", "multipart/form-data",
                                                      "application/fhir+json"}
    assert "Location" in create["responses"]["202"]["headers"]
    fhir = doc["paths"]["/v1/jobs/{job_id}/fhir"]["get"]["responses"]["200"]
    assert "application/fhir+json" in fhir["content"] and "Preference-Applied" in fhir["headers"]
    listing = {p["name"] for p in doc["paths"]["/v1/jobs"]["get"]["parameters"] if "name" in p}
    assert {"status", "model", "external_id", "limit", "cursor"} <= listing
    assert set(doc["components"]["parameters"]["Prefer-wait"]) >= {"name", "in", "schema", "description"}


def _bodies(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every request body and every answer's media, named for messages."""
    for method, path, operation in _operations(doc):
        for kind, media in operation.get("requestBody", {}).get("content", {}).items():
            yield f"{method} {path} request {kind}", media
        for code, answer in operation["responses"].items():
            for kind, media in answer.get("content", {}).items():
                yield f"{method} {path} {code} {kind}", media


def test_every_body_has_an_example(doc: dict[str, Any]) -> None:
    for where, media in _bodies(doc):
        assert "example" in media or media.get("examples"), f"no example for {where}"


def _models() -> dict[str, type[BaseModel]]:
    found = {}
    for module in (schemas, openapi):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                found[name] = value
    return found


def test_every_example_is_valid_for_its_model(doc: dict[str, Any]) -> None:
    models, checked = _models(), 0
    for where, media in _bodies(doc):
        name = media["schema"].get("$ref", "").rsplit("/", 1)[-1]
        if name not in models:
            continue
        examples = [media["example"]] if "example" in media else [e["value"] for e in media["examples"].values()]
        for example in examples:
            try:
                models[name].model_validate(example)
            except ValueError as exc:
                pytest.fail(f"the example of {where} is not a valid {name}: {exc}")
            checked += 1
    assert checked > 40, checked


def test_the_job_schema_has_exactly_the_model_fields(doc: dict[str, Any]) -> None:
    job = doc["components"]["schemas"]["JobOut"]
    assert set(job["properties"]) == set(schemas.JobOut.model_fields)
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "errors"}


def test_the_docs_page_shows_every_path_and_loads_nothing(docs_app: Flask, doc: dict[str, Any]) -> None:
    response = docs_app.test_client().get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    for method, path, operation in _operations(doc):
        assert path in html and f'id="{operation["operationId"]}"' in html, (method, path)
    assert "<script" not in html and "<link" not in html and " src=" not in html
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]  # the one inline style, allowed by its hash
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["Content-Security-Policy"]
    assert "Idempotency-Key" in html and "application/problem+json" in html and "cardiovascular diseases" in html


def test_the_documented_operations_models_match_their_answers(client: FlaskClient) -> None:
    openapi.Health.model_validate(client.get("/healthz").get_json())
    openapi.Readiness.model_validate(client.get("/readyz").get_json())
    problem = client.get("/v1/jobs")
    assert problem.status_code == 401 and problem.mimetype == PROBLEM_JSON
    schemas.Problem.model_validate(problem.get_json())


def test_no_key_is_needed_and_the_spectree_pages_are_not_served(client: FlaskClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/apidoc/openapi.json").status_code == 404
    assert client.get("/apidoc/swagger/").status_code == 404


def test_docs_describe_where_the_spec_lives() -> None:
    text = (PROJECT_ROOT / "docs" / "openapi.md").read_text()
    assert "/openapi.json" in text and "/docs" in text and "spectree" in text
