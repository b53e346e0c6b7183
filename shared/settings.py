"""The one Settings object. Built by `get_settings()`, never at import time, so tests and tools pass their own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob of medq; each field is read from the environment as `MEDQ_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="MEDQ_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'medq.db'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    model_dir: Path = PROJECT_ROOT / "models"
    demo_key: str | None = None
    # Encryption at rest: "id:base64-32-byte-key,..." and the id that encrypts new data (older ids still
    # decrypt). Unset: the development key, which production refuses. `medq data-key` prints a new key.
    data_keys: str = ""
    data_key_id: str = "dev"
    # Flower's basic-auth credentials "user:password"; unset → `medq flower` makes one and keeps it in
    # var/flower.auth (mode 600), as `make run` does for the demo key. Flower never runs without them.
    flower_basic_auth: str | None = None
    # The API's address as clients reach it: names this service in FHIR resources sent in webhook bodies.
    public_base_url: str = "http://127.0.0.1:8000"

    # Request limits (contract defaults).
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_text_chars: int = Field(default=100_000, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # Tokens by the model's tokenizer; the model reads its first max_length (256) and bounds CPU beyond that.
    max_text_tokens: int = Field(default=32_768, gt=0)
    max_batch_items: int = Field(default=256, gt=0, le=256)
    max_wait_seconds: int = Field(default=60, ge=0, le=60)
    idempotency_ttl_hours: int = Field(default=24, gt=0)
    # Finished jobs' inputs and results are purged this many days after they finish (0: kept until DELETE);
    # a tenant's own retention_days wins. The purge runs every retention_sweep_s in the webhook worker (beat).
    retention_days: int = Field(default=30, ge=0)
    retention_sweep_s: float = Field(default=3600.0, gt=0)
    # Per tenant: jobs accepted per minute, and jobs waiting in the queue at once (429 + Retry-After beyond).
    tenant_jobs_per_minute: int = Field(default=6000, gt=0)
    tenant_max_queued: int = Field(default=10_000, gt=0)
    # More failed authentications than this from one client address in a minute → 429 for the rest of it.
    auth_failures_per_minute: int = Field(default=20, gt=0)

    # How long a client should wait before retrying when the broker or database is down.
    retry_after_seconds: int = Field(default=5, gt=0)
    broker_connect_timeout_s: float = Field(default=2.0, gt=0)

    # Worker.
    device: Literal["cpu", "cuda", "auto"] = "auto"
    # Messages a worker holds at once. Single-item jobs can only fill a batch of B if at least B messages are
    # in flight, so keep worker_concurrency >= batch_max_size (threads only wait on futures; they are cheap).
    worker_concurrency: int = Field(default=32, gt=0)
    batch_max_size: int = Field(default=32, gt=0)
    explain_batch_max_size: int = Field(default=8, gt=0)
    batch_max_wait_ms: float = Field(default=5.0, ge=0)
    batch_stat_max_wait_ms: float = Field(default=1.0, ge=0)
    # Stop waiting to fill a batch once nothing has arrived for this long (None: wait the full max wait). A lone
    # job then waits 2 ms, not 5; items of a batch message, prepared back to back, still share a forward.
    batch_max_gap_ms: float | None = Field(default=2.0, ge=0)
    # Padded tokens per text batch (items x longest item): bounds activation memory and CPU latency.
    batch_token_budget: int = Field(default=8192, gt=0)
    # Items more than this many times longer/shorter than a batch's first item wait for their own batch. 1.25:
    # measured best on 2 CPU cores (vs 2.0: +18-26 % items/s for 32-item messages, +8-19 % for 512 items at
    # once; docs/batching.md); on a GPU padding is cheaper than extra forward calls, so raise it there.
    batch_max_length_ratio: float | None = Field(default=1.25, ge=1.0)
    preload_models: bool = True
    log_level: str = "INFO"

    # The sweeper (worker/sweeper.py, run every sweep_interval_s by the webhook worker's beat): jobs `running`
    # longer than sweep_running_after_s (a killed worker's; must exceed the longest batch) go back to the queue,
    # jobs `queued` longer than sweep_queued_after_s (a lost message) get a new message. Docs: docs/reliability.md.
    sweep_running_after_s: float = Field(default=300.0, gt=0)
    sweep_queued_after_s: float = Field(default=900.0, gt=0)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    log_format: Literal["json", "text"] = "json"

    # Webhooks (contract names). The schedule is the delay before each retry after the first attempt.
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    # CIDRs or host names that webhooks may reach although private (plain http:// only to these).
    webhook_allow: str = ""
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0)
    # Each retry waits its scheduled delay plus or minus this fraction, so retries to one receiver spread out.
    webhook_jitter: float = Field(default=0.1, ge=0, le=0.5)
    # Bytes of a receiver's answer read at most (the body is not needed; a huge one must not hurt us).
    webhook_max_response_bytes: int = Field(default=64 * 1024, gt=0)
    # The dispatcher's poll for due retries and for events whose first send was lost.
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    webhook_redispatch_after_s: float = Field(default=60.0, gt=0)
    webhook_concurrency: int = Field(default=16, gt=0)

    # Prometheus endpoints of the workers (0 = off); the API serves /metrics itself. 0.0.0.0 in containers.
    worker_metrics_port: int = Field(default=9808, ge=0)
    webhook_metrics_port: int = Field(default=9809, ge=0)
    metrics_address: str = "127.0.0.1"

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_is_seconds(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError as exc:
            raise ValueError("comma-separated seconds, e.g. 5,300,1800") from exc
        if any(d < 0 for d in delays):
            raise ValueError("delays cannot be negative")
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())

    @property
    def webhook_allow_entries(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.webhook_allow.split(",") if part.strip())


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags) winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
