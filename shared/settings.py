"""The one Settings object. Built by `get_settings()`, never at import time, so tests and tools pass their own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
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

    # Request limits (contract defaults).
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_text_chars: int = Field(default=100_000, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_batch_items: int = Field(default=256, gt=0, le=256)
    max_wait_seconds: int = Field(default=60, ge=0, le=60)
    idempotency_ttl_hours: int = Field(default=24, gt=0)

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
    # Padded tokens per text batch (items x longest item): bounds activation memory and CPU latency.
    batch_token_budget: int = Field(default=8192, gt=0)
    # Items more than this many times longer/shorter than a batch's first item wait for their own batch.
    batch_max_length_ratio: float | None = Field(default=2.0, ge=1.0)
    preload_models: bool = True
    log_level: str = "INFO"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags) winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
