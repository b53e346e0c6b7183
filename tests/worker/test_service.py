"""The job service with the real registry and database, no Celery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared import crud
from shared.db import session_scope
from shared.errors import PredictionFailed
from shared.keys import ensure_tenant
from shared.models import Job
from shared.settings import PROJECT_ROOT, Settings
from shared.status import JobStatus, Priority
from tests.images import png_bytes
from worker.engine import InferenceEngine
from worker.registry import Registry
from worker.service import Runtime, process_jobs


@pytest.fixture(scope="module")
def registry() -> Registry:
    from shared.settings import get_settings

    return Registry(get_settings(device="cpu", model_dir=PROJECT_ROOT / "models"))


def _runtime(settings: Settings, engine: Engine, registry: Registry) -> Runtime:
    return Runtime(settings=settings, engine=engine, inference=InferenceEngine(registry, settings))


def _submit(engine: Engine, model: str, inputs: list[tuple[str, bytes]]) -> list[str]:
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="t")
        items = [crud.NewJob(input_kind=k, input_data=d, input_media_type="image/png" if k == "image" else None)
                 for k, d in inputs]
        jobs = crud.create_jobs(s, tenant_id=tenant.id, model=model, model_version="1.0.0", items=items,
                                priority=Priority.ROUTINE, max_queue_seconds=None, explain=False)
        return [j.id for j in jobs]


def _get(engine: Engine, job_id: str) -> Job:
    with Session(engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_text_and_image_jobs_succeed_in_one_call(engine: Engine, settings: Settings, registry: Registry) -> None:
    runtime = _runtime(settings, engine, registry)
    ids = _submit(engine, "disease-category", [("text", b"Parkinson disease tremor and rigidity.")] * 2)
    ids += _submit(engine, "pneumonia-xray", [("image", png_bytes())])
    process_jobs(ids, runtime=runtime, final_attempt=False)
    for job_id in ids:
        job = _get(engine, job_id)
        assert job.status == JobStatus.SUCCEEDED and job.result and job.started_at and job.finished_at
        assert abs(sum(s["probability"] for s in job.result["scores"]) - 1) < 1e-5
        assert job.result["model_sha256"] == registry.specs[job.model].sha256


def test_a_bad_input_fails_alone(engine: Engine, settings: Settings, registry: Registry) -> None:
    runtime = _runtime(settings, engine, registry)
    good, bad = _submit(engine, "pneumonia-xray", [("image", png_bytes()), ("image", b"\x89PNG broken")])
    process_jobs([good, bad], runtime=runtime, final_attempt=False)
    assert _get(engine, good).status == JobStatus.SUCCEEDED
    failed = _get(engine, bad)
    assert failed.status == JobStatus.FAILED and failed.error and failed.error["type"] == "invalid_input"


def test_unknown_model_fails_the_job_clearly(engine: Engine, settings: Settings, registry: Registry) -> None:
    runtime = _runtime(settings, engine, registry)
    (job_id,) = _submit(engine, "retired-model", [("text", b"x")])
    process_jobs([job_id], runtime=runtime, final_attempt=False)
    job = _get(engine, job_id)
    assert job.status == JobStatus.FAILED and job.error and job.error["type"] == "model_unavailable"


def test_digest_mismatch_refuses_to_load(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "models" / "pneumonia-xray", tmp_path / "pneumonia-xray")
    with (tmp_path / "pneumonia-xray" / "model.safetensors").open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x00\x00\x01")
    runtime = _runtime(settings, engine, Registry(settings.model_copy(update={"model_dir": tmp_path})))
    (job_id,) = _submit(engine, "pneumonia-xray", [("image", png_bytes())])
    process_jobs([job_id], runtime=runtime, final_attempt=False)
    job = _get(engine, job_id)
    assert job.status == JobStatus.FAILED and job.error and "digest" in job.error["detail"]


class _Exploding:
    def __init__(self, spec: object) -> None:
        self.spec = spec

    def size_of(self, item: bytes) -> int:
        return 1

    def prepare(self, data: bytes, media_type: str | None) -> bytes:
        return data

    def predict(self, items: list[bytes]) -> list[list[float]]:
        raise RuntimeError("CUDA error: device-side assert")


def test_batch_failure_requeues_then_fails_on_the_final_attempt(engine: Engine, settings: Settings,
                                                               registry: Registry) -> None:
    local = Registry(settings)
    local._loaded["disease-category"] = _Exploding(registry.specs["disease-category"])  # type: ignore[assignment]
    runtime = _runtime(settings, engine, local)
    ids = _submit(engine, "disease-category", [("text", b"a"), ("text", b"b")])
    with pytest.raises(PredictionFailed):
        process_jobs(ids, runtime=runtime, final_attempt=False)
    assert {_get(engine, i).status for i in ids} == {JobStatus.QUEUED}
    process_jobs(ids, runtime=runtime, final_attempt=True)
    for job_id in ids:
        job = _get(engine, job_id)
        assert job.status == JobStatus.FAILED and job.error and job.error["type"] == "prediction_failed"
