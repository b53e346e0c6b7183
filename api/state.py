"""What the API's views share: settings, the database engine, the enqueuer and the model specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app
from sqlalchemy.engine import Engine

from shared.modelspec import ModelSpec, discover
from shared.notify import Waiter
from shared.ratelimit import RateLimiter
from shared.settings import Settings
from shared.status import Priority


class Enqueuer(Protocol):
    def enqueue(self, job_ids: list[str], priority: Priority) -> None:
        """Send one message carrying `job_ids`; raise BrokerUnavailable if it cannot be sent."""

    def ping(self) -> bool:
        """True if the broker answers."""


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    enqueuer: Enqueuer
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    waiter: Waiter | None = None
    limiter: RateLimiter | None = None

    def reload_specs(self) -> None:
        self.specs = discover(self.settings.model_dir)


def state() -> ApiState:
    result: ApiState = current_app.extensions["medq"]
    return result
