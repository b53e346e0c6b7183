"""The Python client (`shared.client`) and the `medq submit` / `medq jobs` verbs against a real stack: a private
Redis, a worker and the API under gunicorn. A second stack without a worker keeps jobs queued, so cancel, delete
and wait's time-out are tested without racing the worker."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import cli, client_cli
from shared.client import (
    MedqApiError,
    MedqClient,
    MedqConnectionError,
    MedqTimeout,
    WebhookVerificationError,
    verify_webhook,
)
from shared.localstack import LocalStack, local_stack
from tests.images import png_bytes
from worker.webhooks import sign

pytestmark = pytest.mark.integration

NOTE = "Chest pain radiating to the left arm with ST elevation in II, III and aVF."
TEXT_LABELS = {"neoplasms", "digestive system diseases", "nervous system diseases", "cardiovascular diseases",
               "general pathological conditions"}
FIRST_JOB_S = 120  # the worker may still be loading its models when the first job arrives


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("client-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The API and Redis without a worker: every job stays queued."""
    with local_stack(tmp_path_factory.mktemp("idle-stack"), worker=False) as running:
        yield running


@pytest.fixture(scope="module")
def medq(stack: LocalStack) -> Iterator[MedqClient]:
    with MedqClient(stack.base_url, stack.key) as client:
        yield client


@pytest.fixture(scope="module")
def idle_medq(idle: LocalStack) -> Iterator[MedqClient]:
    with MedqClient(idle.base_url, idle.key) as client:
        yield client


def _check_result(job: dict[str, Any], labels: set[str]) -> None:
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["label"] in labels
    assert {s["label"] for s in result["scores"]} == labels
    assert sum(s["probability"] for s in result["scores"]) == pytest.approx(1.0, abs=1e-3)


def test_submit_text_and_wait(medq: MedqClient) -> None:
    job = medq.submit("disease-category", text=NOTE, external_id="ACC-1", priority="stat", wait=30)
    if job["status"] != "succeeded":  # Prefer: wait gives up after 30 s while the worker loads its models
        job = medq.wait(job["id"], timeout=FIRST_JOB_S)
    _check_result(job, TEXT_LABELS)
    assert job["external_id"] == "ACC-1" and job["priority"] == "stat"
    assert medq.get(job["id"]) == job


def test_submit_image_file_by_path_guesses_its_media_type(medq: MedqClient, tmp_path: Path) -> None:
    path = tmp_path / "xray"  # no extension: the PNG magic number decides
    path.write_bytes(png_bytes((64, 64), seed=1))
    job = medq.submit("pneumonia-xray", file=path, explain=True)
    assert job["status"] in {"queued", "running", "succeeded"}
    done = medq.wait(job["id"], timeout=FIRST_JOB_S)
    _check_result(done, {"normal", "pneumonia"})
    assert done["result"]["explanation"]["method"] == "grad-cam"


def test_batch_keeps_order_and_list_filters_by_external_id(medq: MedqClient) -> None:
    tag = f"batch-{uuid.uuid4().hex[:8]}"
    items: list[dict[str, Any]] = [
        {"text": NOTE, "external_id": tag},
        {"text": "Glioblastoma of the left temporal lobe.", "external_id": tag},
        {"input": {"text": "Crohn disease."}},  # already in the API's shape
    ]
    jobs = medq.submit_batch("disease-category", items)
    assert [j["external_id"] for j in jobs] == [tag, tag, None]
    done = medq.wait_many([j["id"] for j in jobs], timeout=FIRST_JOB_S)
    assert [j["id"] for j in done] == [j["id"] for j in jobs]
    for job in done:
        _check_result(job, TEXT_LABELS)
    page = medq.list(external_id=tag, limit=1)
    assert len(page["jobs"]) == 1 and page["next_cursor"]
    rest = medq.list(external_id=tag, cursor=page["next_cursor"])
    assert {j["id"] for j in page["jobs"] + rest["jobs"]} == {jobs[0]["id"], jobs[1]["id"]}
    assert all(j["status"] == "succeeded" for j in medq.list(status="succeeded", limit=5)["jobs"])


def test_idempotency_key_returns_the_same_job(idle_medq: MedqClient) -> None:
    key = str(uuid.uuid4())
    first = idle_medq.submit("disease-category", text=NOTE, idempotency_key=key)
    again = idle_medq.submit("disease-category", text=NOTE, idempotency_key=key)
    assert again["id"] == first["id"]
    with pytest.raises(MedqApiError) as conflict:
        idle_medq.submit("disease-category", text="another note", idempotency_key=key)
    assert conflict.value.status == 409


def test_cancel_and_delete_a_queued_job(idle_medq: MedqClient) -> None:
    job = idle_medq.submit("disease-category", text=NOTE)
    assert job["status"] == "queued" and job["queue_position"] is not None
    canceled = idle_medq.cancel(job["id"])
    assert canceled["status"] == "canceled"
    with pytest.raises(MedqApiError) as again:
        idle_medq.cancel(job["id"])
    assert again.value.status == 409
    idle_medq.delete(job["id"])
    assert idle_medq.get(job["id"])["data_removed"] is True


def test_wait_gives_up_with_the_last_state(idle_medq: MedqClient) -> None:
    job = idle_medq.submit("disease-category", text=NOTE)
    with pytest.raises(MedqTimeout) as timeout:
        idle_medq.wait(job["id"], timeout=0.6, interval=0.2)
    assert timeout.value.job is not None and timeout.value.job["status"] == "queued"


def test_problems_become_api_errors(medq: MedqClient, stack: LocalStack) -> None:
    with pytest.raises(MedqApiError) as missing:
        medq.get(str(uuid.uuid4()))
    assert missing.value.status == 404 and missing.value.type.startswith("urn:medq:problem:")
    with pytest.raises(MedqApiError) as invalid:
        medq.submit("disease-category", text="   ")
    assert invalid.value.status == 422
    assert [e["field"] for e in invalid.value.errors] == ["input.text"]
    assert "input.text" in str(invalid.value)
    with MedqClient(stack.base_url, "mq_not_a_key") as stranger, pytest.raises(MedqApiError) as refused:
        stranger.models()
    assert refused.value.status == 401


def test_models(medq: MedqClient) -> None:
    assert {m["name"] for m in medq.models()} == {"disease-category", "pneumonia-xray"}


def test_503_is_retried_after_retry_after_with_the_same_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx.Response(503, headers={"Retry-After": "0", "Content-Type": "application/problem+json"},
                                  json={"type": "urn:medq:problem:unavailable", "title": "Unavailable",
                                        "status": 503, "detail": "broker down"})
        return httpx.Response(202, json={"id": "j1", "status": "queued"})

    with MedqClient("http://medq.test", "k", transport=httpx.MockTransport(handler)) as client:
        assert client.submit("disease-category", text=NOTE)["id"] == "j1"
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and keys != {""}


def test_503_after_the_last_retry_is_raised_with_retry_after() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "0"}, json={"title": "Unavailable", "status": 503})

    with MedqClient("http://medq.test", "k", retries=1, transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(MedqApiError) as failed:
        client.list()
    assert failed.value.status == 503 and failed.value.retry_after == 0


def test_an_unreachable_server_is_a_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with MedqClient("http://medq.test", "k", retries=0, transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(MedqConnectionError, match=r"cannot reach http://medq\.test"):
        client.get("j1")


def _secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def test_verify_webhook_accepts_medq_signatures_and_rejects_tampering() -> None:
    old, new = _secret(), _secret()
    body = json.dumps({"type": "job.succeeded", "timestamp": "2026-11-25T10:00:00Z", "data": {"id": "j1"}})
    headers = sign("msg_1", datetime.now(UTC), body, [new, old])  # as during a rotation: both secrets sign
    assert verify_webhook(new, body.encode(), headers)["data"]["id"] == "j1"
    assert verify_webhook([_secret(), old], body.encode(), headers)["type"] == "job.succeeded"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new, body.replace("j1", "j2").encode(), headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(_secret(), body.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new, body.encode(), {**headers, "webhook-signature": "v1,not-base64!"})


# ---- the command line ---------------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], stack: LocalStack, *args: str) -> Any:
    code = cli.main([*args, "--url", stack.base_url, "--key", stack.key])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_cli_submit_text_and_image_with_wait(capsys: pytest.CaptureFixture[str], stack: LocalStack,
                                             tmp_path: Path) -> None:
    job = _cli(capsys, stack, "submit", "--model", "disease-category", "--text", NOTE, "--wait",
               "--priority", "urgent", "--external-id", "CLI-1", "--explain")
    _check_result(job, TEXT_LABELS)
    assert job["priority"] == "urgent" and job["external_id"] == "CLI-1"
    assert job["result"]["explanation"]["method"] == "integrated-gradients"
    (tmp_path / "xray.png").write_bytes(png_bytes((40, 40), seed=2))
    image = _cli(capsys, stack, "submit", "--model", "pneumonia-xray", "--file", str(tmp_path / "xray.png"), "--wait")
    _check_result(image, {"normal", "pneumonia"})


def test_cli_batch_from_jsonl_and_from_several_files(capsys: pytest.CaptureFixture[str], stack: LocalStack,
                                                      tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(seed=4))
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"text": NOTE, "external_id": "N-1"}) + "\n\n" + json.dumps("Colon polyps.") + "\n")
    jobs = _cli(capsys, stack, "submit", "--model", "disease-category", "--batch", str(notes))["jobs"]
    assert [j["external_id"] for j in jobs] == ["N-1", None]
    for job in jobs:
        _check_result(job, TEXT_LABELS)
    files = [str(tmp_path / "a.png"), str(tmp_path / "a.png")]
    queued = _cli(capsys, stack, "submit", "--model", "pneumonia-xray", "--file", files[0], "--file", files[1],
                  "--no-wait", "--external-id", "CT-9")["jobs"]
    assert len(queued) == 2 and {j["external_id"] for j in queued} == {"CT-9"}


def test_cli_jobs_list_get_cancel(capsys: pytest.CaptureFixture[str], idle: LocalStack) -> None:
    job = _cli(capsys, idle, "submit", "--model", "disease-category", "--text", NOTE)
    assert job["status"] == "queued"
    listed = _cli(capsys, idle, "jobs", "list", "--status", "queued", "--limit", "1")
    assert len(listed["jobs"]) == 1 and listed["jobs"][0]["status"] == "queued"
    assert _cli(capsys, idle, "jobs", "get", job["id"])["id"] == job["id"]
    assert _cli(capsys, idle, "jobs", "cancel", job["id"])["status"] == "canceled"


def test_cli_reads_url_and_key_from_the_environment_and_reports_errors(
        capsys: pytest.CaptureFixture[str], idle: LocalStack, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("MEDQ_URL", idle.base_url)
    monkeypatch.setenv("MEDQ_API_KEY", idle.key)
    assert cli.main(["jobs", "get", "no-such-job"]) == 1
    out, err = capsys.readouterr()
    # Only the CLI's own lines: background threads of apps built by earlier tests may log (JSON) meanwhile.
    said = [line for line in err.splitlines() if not line.startswith("{")]
    assert out == "" and len(said) == 1 and said[0].startswith("medq: 404")
    monkeypatch.delenv("MEDQ_API_KEY")
    monkeypatch.delenv("MEDQ_DEMO_KEY", raising=False)
    monkeypatch.setattr(client_cli, "DEMO_KEY_FILE", tmp_path / "absent.key")
    assert cli.main(["jobs", "list"]) == 1
    assert "no API key" in capsys.readouterr().err
    (tmp_path / "demo.key").write_text(idle.key + "\n")
    monkeypatch.setattr(client_cli, "DEMO_KEY_FILE", tmp_path / "demo.key")
    assert cli.main(["jobs", "list", "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)["jobs"]) == 1
