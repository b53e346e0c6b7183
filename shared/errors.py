"""The one error hierarchy. The API maps `MedqError` to problem+json in `api/problems.py`; workers store
`JobFailure` subclasses on the job as `{"type", "detail"}`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One invalid field, reported in a problem's `errors` list."""

    field: str
    message: str


class MedqError(Exception):
    """Base of every error medq raises on purpose."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str = "", *, errors: list[FieldError] | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.retry_after = retry_after


class BadRequest(MedqError):
    status, slug, title = 400, "malformed-request", "Malformed request"


class Unauthorized(MedqError):
    status, slug, title = 401, "unauthorized", "Missing, invalid or expired API key"


class Forbidden(MedqError):
    status, slug, title = 403, "forbidden", "The API key lacks the required scope"


class NotFound(MedqError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(MedqError):
    status, slug, title = 409, "conflict", "Conflict"


class IdempotencyConflict(Conflict):
    slug, title = "idempotency-conflict", "Idempotency-Key reused with a different body"


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "The job's status does not allow this"


class Gone(MedqError):
    status, slug, title = 410, "gone", "The data was removed"


class PayloadTooLarge(MedqError):
    status, slug, title = 413, "payload-too-large", "Request body or field too large"


class UnsupportedMediaType(MedqError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Content-Type"


class ValidationFailed(MedqError):
    status, slug, title = 422, "validation-error", "The request is invalid"


class WebhookRefused(ValidationFailed):
    """A webhook URL the SSRF guard will not call (private address, bad scheme, unresolvable host)."""

    slug, title = "webhook-refused", "The webhook URL is refused"


class TooManyRequests(MedqError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(MedqError):
    status, slug, title = 503, "service-unavailable", "A backing service is unavailable"


class BrokerUnavailable(ServiceUnavailable):
    slug, title = "broker-unavailable", "The job queue is unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    slug, title = "database-unavailable", "The database is unavailable"


class SchemaOutdated(MedqError):
    """A database made by an older medq (a start-up error, not an HTTP one)."""

    title = "The database schema is older than this medq"


# --- Worker-side failures, stored on the job rather than answered over HTTP. ---


class JobFailure(MedqError):
    """A job that cannot succeed; `job_error_type` is what the client sees in `error.type`."""

    job_error_type = "internal_error"


class InvalidInput(JobFailure):
    job_error_type = "invalid_input"
    title = "The job's input could not be processed"


class ModelUnavailable(JobFailure):
    job_error_type = "model_unavailable"
    title = "The model could not be loaded"


class ModelConfigError(ModelUnavailable):
    """A model directory whose model.json or weights are wrong (bad JSON, digest mismatch, …)."""

    title = "Invalid model directory"


class PredictionFailed(JobFailure):
    job_error_type = "prediction_failed"
    title = "The model failed on this batch"
