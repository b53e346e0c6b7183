"""Pydantic schemas of the HTTP contract (requests and responses). Responses are explicit: no internal field
of a table reaches a client unless it is named here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from shared.status import JobStatus, Priority

EventType = Literal["job.succeeded", "job.failed", "job.canceled", "job.expired"]
ImageMediaType = Literal["image/png", "image/jpeg", "application/dicom"]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e ]+$")]


class _Strict(BaseModel):
    # Unknown fields are refused: a misspelt "prioirty" should be a 422, not silently routine.
    model_config = ConfigDict(extra="forbid")


class TextInput(_Strict):
    text: str = Field(min_length=1, description="The clinical text to classify.")


class ImageInput(_Strict):
    image_b64: str = Field(min_length=1, description="The image bytes, base64 encoded.")
    media_type: ImageMediaType


JobInput = TextInput | ImageInput


class WebhookSpec(_Strict):
    url: AnyHttpUrl = Field(description="https:// endpoint; private targets only when allowlisted.")
    events: list[EventType] = Field(default_factory=list, description="Empty: every terminal event.")


ResultFormat = Literal["json", "fhir"]


class JobCreate(_Strict):
    model: str = Field(min_length=1, max_length=100)
    input: JobInput
    # Extension: the patient as a FHIR Reference (set from a FHIR input); becomes RiskAssessment.subject.
    subject: dict[str, Any] | None = None
    external_id: ExternalId | None = None
    priority: Priority = Priority.ROUTINE
    webhook: WebhookSpec | None = None
    # "fhir": webhook bodies also carry the FHIR RiskAssessment bundle (`fhir`) beside the Job (`data`).
    result_format: ResultFormat = "json"
    max_queue_seconds: int | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    explain: bool = False


class BatchItem(_Strict):
    input: JobInput
    external_id: ExternalId | None = None


class BatchCreate(_Strict):
    model: str = Field(min_length=1, max_length=100)
    items: list[BatchItem] = Field(min_length=1)
    priority: Priority = Priority.ROUTINE
    webhook: WebhookSpec | None = None
    # "fhir": webhook bodies also carry the FHIR RiskAssessment bundle (`fhir`) beside the Job (`data`).
    result_format: ResultFormat = "json"
    max_queue_seconds: int | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    explain: bool = False


class Score(BaseModel):
    label: str
    probability: float


class JobResult(BaseModel):
    label: str
    scores: list[Score]
    explanation: dict[str, Any] | None = None
    indeterminate: bool = False
    model: str
    model_version: str
    model_sha256: str


class JobError(BaseModel):
    type: str
    detail: str


class JobOut(BaseModel):
    id: str
    status: JobStatus
    model: str
    model_version: str
    external_id: str | None
    priority: Priority
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_position: int | None
    # Extension: while queued, when the job is expected to start (queue position / recent throughput), else null.
    estimated_start_at: datetime | None = None
    result: JobResult | None
    error: JobError | None
    data_removed: bool


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class BatchOut(BaseModel):
    jobs: list[JobOut]


class ModelCard(BaseModel):
    intended_use: str = ""
    training_data: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    limitations: str = ""


class ModelOut(BaseModel):
    name: str
    version: str
    task: Literal["text-classification", "image-classification"]
    labels: list[str]
    sha256: str
    limits: dict[str, Any]
    card: ModelCard
    abstain_band: tuple[float, float] | None = None
    calibration: dict[str, Any] | None = None


class ModelList(BaseModel):
    models: list[ModelOut]


class DeliveryOut(BaseModel):
    event: EventType
    webhook_id: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


class WebhookSecretOut(BaseModel):
    secret: str
    previous_valid_until: datetime | None = None


class WebhookAllowlist(_Strict):
    entries: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = Field(max_length=100)


class JobListQuery(BaseModel):
    """The query of `GET /v1/jobs`, for the OpenAPI spec; `api/jobs.py` reads the same names and limits."""

    status: JobStatus | None = Field(default=None, description="Only jobs in this status.")
    model: str | None = Field(default=None, description="Only jobs of this model.")
    external_id: str | None = Field(default=None, description="Only jobs with this external_id.")
    limit: int = Field(default=50, ge=1, le=200, description="Jobs per page, newest first.")
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page.")


class ProblemField(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `items[3].input.text` (empty: the whole body).")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error (`application/problem+json`), built by `api/problems.py`."""

    type: str = Field(description="`urn:medq:problem:<slug>`, stable for programs to switch on.")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[ProblemField] | None = Field(default=None, description="Present (non-empty) on every 422.")
