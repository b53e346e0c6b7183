"""API → Redis → Celery worker → database → poll, on real processes over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from shared.localstack import LocalStack as Stack
from tests.images import b64, png_bytes

pytestmark = pytest.mark.integration

DISEASES = {"neoplasms", "digestive system diseases", "nervous system diseases", "cardiovascular diseases",
            "general pathological conditions"}


def poll(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")


def check_result(job: dict[str, Any], labels: set[str]) -> None:
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["label"] in labels and {s["label"] for s in result["scores"]} == labels
    probs = [s["probability"] for s in result["scores"]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
    assert result["label"] == result["scores"][0]["label"]
    assert job["started_at"] and job["finished_at"] and job["queue_position"] is None


def test_text_job_is_classified(stack: Stack) -> None:
    with stack.client() as client:
        body = {"model": "disease-category", "external_id": "ACC-1",
                "input": {"text": "Metastatic breast carcinoma with axillary lymph node involvement; "
                                  "tumour resected and adjuvant chemotherapy started."}}
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        job = poll(client, response.json()["id"])
    check_result(job, DISEASES)
    assert job["result"]["label"] == "neoplasms"


def test_png_job_is_classified(stack: Stack) -> None:
    with stack.client() as client:
        body = {"model": "pneumonia-xray", "input": {"image_b64": b64(png_bytes()), "media_type": "image/png"}}
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        check_result(poll(client, response.json()["id"]), {"normal", "pneumonia"})


def test_prefer_wait_returns_the_finished_job(stack: Stack) -> None:
    with stack.client() as client:
        body = {"model": "disease-category", "input": {"text": "Ulcerative colitis flare with bloody diarrhoea."}}
        response = client.post("/v1/jobs", json=body, headers={"Prefer": "wait=60"})
    assert response.status_code == 200, response.text
    check_result(response.json(), DISEASES)


def test_get_with_prefer_wait_answers_when_the_job_finishes(stack: Stack) -> None:
    items = [{"input": {"text": f"Note {i}: chest pain radiating to the left arm, troponin raised."}}
             for i in range(16)]
    with stack.client(timeout=90) as client:
        response = client.post("/v1/jobs/batch", json={"model": "disease-category", "items": items})
        assert response.status_code == 202, response.text
        last = response.json()["jobs"][-1]["id"]
        # Asked right after the submission, when the job is still queued: the answer waits for the result.
        job = client.get(f"/v1/jobs/{last}", headers={"Prefer": "wait=60"}).json()
    check_result(job, DISEASES)


def test_batch_with_prefer_wait_answers_with_every_result(stack: Stack) -> None:
    items = [{"input": {"text": f"Note {i}: new-onset atrial fibrillation with rapid ventricular response."}}
             for i in range(12)]
    with stack.client(timeout=90) as client:
        response = client.post("/v1/jobs/batch", json={"model": "disease-category", "items": items},
                               headers={"Prefer": "wait=60"})
    assert response.status_code == 200, response.text
    for job in response.json()["jobs"]:
        check_result(job, DISEASES)


def test_batch_completes_in_item_order(stack: Stack) -> None:
    items = [{"input": {"text": f"Patient {i}: epileptic seizures, EEG shows spikes."}, "external_id": f"B-{i}"}
             for i in range(20)]
    with stack.client() as client:
        response = client.post("/v1/jobs/batch", json={"model": "disease-category", "items": items,
                                                        "priority": "urgent"})
        assert response.status_code == 202, response.text
        jobs = [poll(client, j["id"]) for j in response.json()["jobs"]]
    assert [j["external_id"] for j in jobs] == [f"B-{i}" for i in range(20)]
    for job in jobs:
        check_result(job, DISEASES)


def test_a_broken_image_fails_with_a_reason_and_the_worker_carries_on(stack: Stack) -> None:
    # Valid PNG header and size (so the API accepts it) but truncated pixel data: only decoding finds out.
    data = png_bytes((64, 64), seed=3)
    broken = data[: len(data) // 2]
    with stack.client() as client:
        response = client.post("/v1/jobs", json={"model": "pneumonia-xray",
                                                 "input": {"image_b64": b64(broken), "media_type": "image/png"}})
        if response.status_code == 422:  # Pillow's verify() caught it at the door: also a clear answer
            assert response.json()["errors"]
            return
        job = poll(client, response.json()["id"])
        assert job["status"] == "failed" and job["error"]["type"] == "invalid_input", job
        after = client.post("/v1/jobs", json={"model": "pneumonia-xray",
                                              "input": {"image_b64": b64(png_bytes()), "media_type": "image/png"}})
        assert poll(client, after.json()["id"])["status"] == "succeeded"


def test_concurrent_single_jobs_share_forward_passes(stack: Stack) -> None:
    """24 single-item jobs submitted at once, each its own Celery message, are served by fewer forward calls."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlmodel import Session, col, create_engine, select

    from shared.models import Job

    n = 24
    body = {"model": "disease-category", "input": {"text": "Acute pancreatitis with elevated lipase."}}
    with stack.client() as client, ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/jobs", json=body), range(n)))
        ids = [r.json()["id"] for r in responses]
        jobs = [poll(client, job_id) for job_id in ids]
    assert all(job["status"] == "succeeded" for job in jobs)
    engine = create_engine(stack.env["MEDQ_DATABASE_URL"])
    with Session(engine) as session:
        rows = session.exec(select(Job).where(col(Job.id).in_(ids))).all()
    batches = {row.result["batch"]["id"] for row in rows if row.result}
    assert len(rows) == n and len(batches) < n, f"{len(batches)} forward calls for {n} jobs"


def test_explanations_come_back_for_text_and_image(stack: Stack) -> None:
    with stack.client() as client:
        text = client.post("/v1/jobs", json={"model": "disease-category", "explain": True,
                                             "input": {"text": "Hepatocellular carcinoma in a cirrhotic liver."}},
                           headers={"Prefer": "wait=60"}).json()
        image = client.post("/v1/jobs", json={"model": "pneumonia-xray", "explain": True,
                                              "input": {"image_b64": b64(png_bytes()), "media_type": "image/png"}},
                            headers={"Prefer": "wait=60"}).json()
        plain = client.post("/v1/jobs", json={"model": "disease-category", "input": {"text": "Colitis."}},
                            headers={"Prefer": "wait=60"}).json()
    assert text["status"] == "succeeded", text
    assert text["result"]["explanation"]["method"] == "integrated-gradients"
    tokens = [t["token"].removeprefix("##") for t in text["result"]["explanation"]["tokens"]]
    assert "".join(tokens) == "hepatocellularcarcinomainacirrhoticliver."  # every word-piece, in order
    assert image["result"]["explanation"]["method"] == "grad-cam" and image["result"]["explanation"]["grid"]
    assert plain["result"]["explanation"] is None


def _samples(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus text (all label sets)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _scrape(url: str) -> str:
    """The worker serves metrics once it is ready (models loaded): wait for that."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return httpx.get(url, timeout=10).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_metrics_are_present_and_move_after_a_job(stack: Stack) -> None:
    worker_metrics = f"http://127.0.0.1:{stack.env['MEDQ_WORKER_METRICS_PORT']}/metrics"
    with stack.client() as client:
        before_api = client.get("/metrics").text
        before_worker = _scrape(worker_metrics)
        job = client.post("/v1/jobs", json={"model": "disease-category", "input": {"text": "Melaena and anaemia."}},
                          headers={"Prefer": "wait=30"}).json()
        assert job["status"] == "succeeded"
        after_api = client.get("/metrics").text
    after_worker = _scrape(worker_metrics)
    for name in ("medq_jobs_accepted_total", "medq_http_requests_total", "medq_http_request_duration_seconds_count"):
        assert _samples(after_api, name) > _samples(before_api, name), name
    for name in ("medq_worker_items_total", "medq_worker_batch_size_count", "medq_worker_forward_seconds_count",
                 "medq_worker_queue_delay_seconds_count", "medq_worker_jobs_total"):
        assert _samples(after_worker, name) > _samples(before_worker, name), name
    assert 'medq_jobs_accepted_total{model="disease-category",priority="routine"}' in after_api
    assert "medq_worker_model_load_seconds" in after_worker
