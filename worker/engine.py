"""One batcher per loaded model: the bridge between the job service and the batching queue."""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ModelUnavailable
from shared.settings import Settings
from worker import metrics
from worker.batching import Batcher, BatchPolicy, BatchStats
from worker.predictors.base import Predictor
from worker.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One item's output and the forward call (batch) that produced it."""

    probabilities: list[float]
    batch_id: str
    batch_size: int
    explanation: dict[str, Any] | None = None


@dataclass
class EngineStats:
    batches: int = 0
    items: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    forward_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, stats: BatchStats) -> None:
        with self._lock:
            self.batches += 1
            self.items += stats.size
            self.padded_tokens += stats.padded_tokens
            self.real_tokens += stats.real_tokens
            self.forward_seconds += stats.seconds


def policy_for(predictor: Predictor, settings: Settings, *, explain: bool) -> BatchPolicy:
    is_text = predictor.spec.task == "text-classification"
    # Explanations cost a backward pass (text: one per integrated-gradients step): smaller batches.
    size = settings.explain_batch_max_size if explain else settings.batch_max_size
    budget = settings.batch_token_budget // (4 if explain else 1)
    return BatchPolicy(max_batch_size=size, max_wait_ms=settings.batch_max_wait_ms,
                       stat_max_wait_ms=settings.batch_stat_max_wait_ms, token_budget=budget if is_text else None,
                       max_length_ratio=settings.batch_max_length_ratio if is_text else None,
                       max_gap_ms=settings.batch_max_gap_ms)


def _served(predictor: Predictor, *, explain: bool) -> Any:
    def predict(items: list[Any]) -> Sequence[Served]:
        batch_id = str(uuid.uuid4())
        if explain:
            return [Served(p, batch_id, len(items), e) for p, e in predictor.explain(items)]
        return [Served(p, batch_id, len(items)) for p in predictor.predict(items)]

    return predict


class InferenceEngine:
    """Lazily builds a Batcher for each model the registry can load."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.stats = EngineStats()
        self._batchers: dict[tuple[str, bool], Batcher[Any, Served]] = {}
        self._lock = threading.Lock()

    def batcher(self, model: str, *, explain: bool = False) -> Batcher[Any, Served]:
        """The model's batcher; explanation jobs have their own, so they never slow plain ones down."""
        key = (model, explain)
        with self._lock:
            if key not in self._batchers:
                predictor = self.registry.get(model)
                self._batchers[key] = Batcher(
                    _served(predictor, explain=explain), policy_for(predictor, self.settings, explain=explain),
                    size_of=predictor.size_of, name=f"{model}{'-explain' if explain else ''}",
                    on_batch=functools.partial(self._record, model))
            return self._batchers[key]

    def warmup(self) -> None:
        """Load every model and run one forward per shape bucket, so kernels and allocations are ready."""
        for name in self.registry.specs:
            try:
                predictor = self.registry.get(name)
            except ModelUnavailable as exc:
                log.error("model %s not loaded: %s", name, exc)
                continue
            for batch in predictor.warmup_batches(self.settings.batch_max_size):
                predictor.predict(batch)
            log.info("model %s warmed up", name)

    def _record(self, model: str, stats: BatchStats) -> None:
        self.stats.record(stats)
        metrics.record_batch(model, stats)
        log.debug("forward: %d items, %d/%d padded tokens, %.1f ms", stats.size, stats.real_tokens,
                  stats.padded_tokens, stats.seconds * 1000)

    def close(self, timeout: float = 30.0) -> None:
        """Run what is queued, then stop every inference thread."""
        with self._lock:
            batchers = list(self._batchers.values())
        for batcher in batchers:
            batcher.close(timeout)
