"""A predictor that computes nothing: uniform probabilities. It shows the queue's own ceiling in benchmarks and
load tests; `model.json` must still name a weights file with a matching digest, like any model."""

from __future__ import annotations

from collections.abc import Sequence

from shared.modelspec import ModelSpec


class NoopPredictor:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def prepare(self, data: bytes, media_type: str | None) -> int:
        return len(data)

    def size_of(self, item: int) -> int:
        return 1

    def predict(self, items: Sequence[int]) -> list[list[float]]:
        share = 1.0 / len(self.spec.labels)
        return [[share] * len(self.spec.labels) for _ in items]

    def explain(self, items: Sequence[int]) -> list[tuple[list[float], dict[str, object]]]:
        return [(probs, {"method": "none"}) for probs in self.predict(items)]

    def warmup_batches(self, max_batch_size: int) -> list[list[int]]:
        return []
