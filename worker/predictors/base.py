"""The predictor interface and the result it produces."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from shared.modelspec import ModelSpec


class Predictor(Protocol):
    spec: ModelSpec

    def prepare(self, data: bytes, media_type: str | None) -> Any:
        """Decode one job's stored input; raise InvalidInput if it cannot be used."""

    def size_of(self, item: Any) -> int:
        """The item's cost for the batcher's budget: tokens for text, 1 for an image."""

    def predict(self, items: Sequence[Any]) -> list[list[float]]:
        """Calibrated class probabilities for each prepared item, in the order of `spec.labels`."""

    def explain(self, items: Sequence[Any]) -> list[tuple[list[float], dict[str, Any]]]:
        """Like `predict`, each with an explanation of the top label (costlier: run for `explain: true`)."""

    def warmup_batches(self, max_batch_size: int) -> list[list[Any]]:
        """Dummy prepared batches covering the shapes the model will see."""


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that have it (fp16 on older ones), fp32 on CPUs; probabilities are computed in fp32."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def calibrated_probabilities(logits: torch.Tensor, temperature: float) -> list[list[float]]:
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    rows: list[list[float]] = probs.cpu().tolist()
    return rows


def build_result(spec: ModelSpec, probabilities: Sequence[float]) -> dict[str, Any]:
    """The stored result: top label, every label's probability high to low, and the abstain flag."""
    if len(probabilities) != len(spec.labels):
        raise ValueError(f"{len(probabilities)} probabilities for {len(spec.labels)} labels")
    scores = sorted(zip(spec.labels, probabilities, strict=True), key=lambda pair: pair[1], reverse=True)
    top = scores[0][1]
    band = spec.abstain_band
    return {
        "label": scores[0][0],
        "scores": [{"label": label, "probability": float(p)} for label, p in scores],
        "explanation": None,
        "indeterminate": bool(band is not None and band[0] <= top <= band[1]),
        "model": spec.name,
        "model_version": spec.version,
        "model_sha256": spec.sha256,
    }


class ForwardLock:
    """One forward pass at a time per model: concurrent CPU forwards only fight over the same cores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
