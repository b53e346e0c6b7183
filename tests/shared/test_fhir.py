"""The FHIR R4 result builder: valid against the R4B models, round-trips through them, and says what it must."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.riskassessment import RiskAssessment

from shared.errors import Gone, InvalidTransition
from shared.fhir import risk_assessment_bundle
from shared.models import Job
from shared.modelspec import ModelSpec, discover
from shared.settings import PROJECT_ROOT

SPECS = discover(PROJECT_ROOT / "models")
BASE = "https://medq.example.org"
JOB_ID = "0f4b2a3c-5d6e-4f70-8192-a3b4c5d6e7f8"
SHA = "0ad74ed0bfae90c7b4f7ec78bfdab45591e46a97e9f1197c3c5ec6d347248c44"


def _job(model: str = "disease-category", **changes: Any) -> Job:
    spec = SPECS[model]
    probs = [0.6, 0.2, 0.1, 0.06, 0.04][: len(spec.labels)]
    probs[-1] += 1 - sum(probs)
    scores = [{"label": label, "probability": p} for label, p in zip(reversed(spec.labels), probs, strict=True)]
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": JOB_ID, "tenant_id": "t", "model": model, "model_version": "1.0.0", "status": "succeeded",
        "input_kind": spec.input_kind, "external_id": "ACC-7", "created_at": start,
        "started_at": start + timedelta(seconds=1), "finished_at": start + timedelta(seconds=2),
        "result": {"label": scores[0]["label"], "scores": scores, "explanation": None, "indeterminate": False,
                   "model": model, "model_version": "1.0.0", "model_sha256": SHA},
    }
    fields.update(changes)
    return Job(**fields)


def _resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["resource"]["resourceType"]: entry["resource"] for entry in bundle["entry"]}


def test_the_bundle_validates_and_round_trips_through_the_r4b_models() -> None:
    out = risk_assessment_bundle(_job(), SPECS["disease-category"], base_url=BASE)
    again = json.loads(Bundle.model_validate(out).model_dump_json())
    assert again == out
    resources = _resources(out)
    assert set(resources) == {"RiskAssessment", "Provenance", "Device"}
    for model in (RiskAssessment, Provenance, Device):
        resource = resources[model.__name__]
        assert json.loads(model.model_validate(resource).model_dump_json()) == resource
    assert out["type"] == "collection" and out["link"][0]["url"] == f"{BASE}/v1/jobs/{JOB_ID}/fhir"


def test_the_risk_assessment_says_what_the_model_said_with_codes() -> None:
    job = _job()
    risk = _resources(risk_assessment_bundle(job, SPECS["disease-category"], base_url=BASE))["RiskAssessment"]
    assert risk["status"] == "preliminary"
    assert risk["meta"]["security"] == [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                         "code": "AIAST", "display": "Artificial Intelligence asserted"}]
    assert job.result is not None
    predicted = [(p["outcome"]["text"], p["probabilityDecimal"]) for p in risk["prediction"]]
    assert predicted == [(s["label"], s["probability"]) for s in job.result["scores"]]
    assert all(0 <= p <= 1 for _, p in predicted) and abs(sum(p for _, p in predicted) - 1) < 1e-9
    by_label = {p["outcome"]["text"]: p["outcome"] for p in risk["prediction"]}
    assert by_label["neoplasms"]["coding"] == [{"system": "http://snomed.info/sct", "code": "55342001",
                                                "display": "Neoplastic disease (disorder)"}]
    assert all(o["coding"] for o in by_label.values()), "every disease category has a code"
    assert risk["method"]["coding"][0] == {"system": "urn:medq:model", "code": "disease-category",
                                           "version": "1.0.0", "display": "disease-category 1.0.0"}
    assert risk["subject"] == {"identifier": {"system": "urn:medq:external-id", "value": "ACC-7"}}
    assert risk["basis"][0]["identifier"] == {"system": "urn:medq:external-id", "value": "ACC-7"}


def test_provenance_names_the_model_as_a_device_with_digest_and_version() -> None:
    out = risk_assessment_bundle(_job(), SPECS["disease-category"], base_url=BASE)
    urls = {entry["resource"]["resourceType"]: entry["fullUrl"] for entry in out["entry"]}
    resources = _resources(out)
    provenance, device = resources["Provenance"], resources["Device"]
    assert provenance["target"] == [{"reference": urls["RiskAssessment"]}]
    assert provenance["agent"][0]["who"]["reference"] == urls["Device"]
    assert resources["RiskAssessment"]["performer"]["reference"] == urls["Device"]
    assert {v["value"] for v in device["version"]} == {"1.0.0", SHA}
    assert device["identifier"] == [{"system": "urn:medq:model-sha256", "value": SHA}]
    assert device["deviceName"] == [{"name": "disease-category", "type": "model-name"}]
    other = risk_assessment_bundle(_job(id="1f4b2a3c-5d6e-4f70-8192-a3b4c5d6e7f8"), None, base_url=BASE)
    assert [e["fullUrl"] for e in other["entry"]][2] == urls["Device"], "one Device per model version"


def test_subject_is_the_fhir_patient_or_the_job_id_and_dicom_studies_are_the_basis() -> None:
    patient = {"type": "Patient", "reference": "Patient/123"}
    risk = _resources(risk_assessment_bundle(_job(subject=patient), None, base_url=BASE))["RiskAssessment"]
    assert risk["subject"] == patient
    refs = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1", "SeriesInstanceUID": "1.2.3.4",
            "SOPInstanceUID": "1.2.3.4.5"}
    job = _job("pneumonia-xray", external_id=None, input_refs=refs)
    risk = _resources(risk_assessment_bundle(job, SPECS["pneumonia-xray"], base_url=BASE))["RiskAssessment"]
    assert risk["subject"] == {"identifier": {"system": "urn:medq:external-id", "value": JOB_ID}}
    assert risk["basis"][0]["type"] == "ImagingStudy"
    assert risk["basis"][0]["identifier"] == {"system": "urn:dicom:uid",
                                              "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}
    codes = {p["outcome"]["text"]: {c["code"] for c in p["outcome"]["coding"]} for p in risk["prediction"]}
    assert codes == {"pneumonia": {"233604007", "J18.9"}, "normal": {"17621005"}}


def test_without_a_spec_labels_are_text_only_and_indeterminate_is_noted() -> None:
    job = _job()
    assert job.result is not None
    job.result = {**job.result, "indeterminate": True}
    risk = _resources(risk_assessment_bundle(job, None, base_url=BASE))["RiskAssessment"]
    assert all(set(p["outcome"]) == {"text"} for p in risk["prediction"])
    assert any("Indeterminate" in note["text"] for note in risk["note"])


@pytest.mark.parametrize("changes,error", [
    ({"status": "queued", "result": None, "finished_at": None}, InvalidTransition),
    ({"status": "running", "result": None, "finished_at": None}, InvalidTransition),
    ({"status": "failed", "result": None, "error": {"type": "invalid_input", "detail": "x"}}, InvalidTransition),
    ({"data_removed": True, "result": None}, Gone),
])
def test_no_result_is_a_conflict_and_erased_data_is_gone(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        risk_assessment_bundle(_job(**changes), SPECS["disease-category"], base_url=BASE)


def test_codes_must_name_labels_of_the_model() -> None:
    raw = SPECS["pneumonia-xray"].model_dump(exclude={"directory"})
    raw["codes"] = {"pneumonitis": [{"system": "http://snomed.info/sct", "code": "1"}]}
    with pytest.raises(ValueError, match="pneumonitis"):
        ModelSpec.model_validate(raw)
