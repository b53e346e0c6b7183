"""The model registry: reads model directories, checks each weights digest, builds predictors once."""

from __future__ import annotations

import logging
import threading
import time

import torch

from shared.errors import ModelConfigError, ModelUnavailable
from shared.modelspec import ModelSpec, discover, verify_digest
from shared.settings import Settings
from worker import metrics
from worker.predictors.base import Predictor, pick_device

log = logging.getLogger(__name__)


def build_predictor(spec: ModelSpec, device: torch.device, *, max_pixels: int) -> Predictor:
    """Digest first: weights that are not the ones model.json names are never loaded."""
    verify_digest(spec)
    if spec.architecture == "noop":
        from worker.predictors.noop import NoopPredictor

        return NoopPredictor(spec)
    if spec.task == "text-classification":
        from worker.predictors.text import TextPredictor

        return TextPredictor(spec, device)
    from worker.predictors.image import ImagePredictor

    return ImagePredictor(spec, device, max_pixels=max_pixels)


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = pick_device(settings.device)
        self.specs = discover(settings.model_dir)
        self._loaded: dict[str, Predictor] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Predictor:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def _load(self, name: str) -> Predictor:
        spec = self.specs.get(name)
        if spec is None:
            raise ModelUnavailable(f"this worker has no model {name!r}")
        started = time.perf_counter()
        try:
            predictor = build_predictor(spec, self.device, max_pixels=self.settings.max_image_pixels)
        except ModelConfigError:
            raise
        except Exception as exc:
            raise ModelUnavailable(f"model {name} failed to load: {exc}") from exc
        seconds = time.perf_counter() - started
        metrics.MODEL_LOAD.labels(name).set(seconds)
        log.info("loaded model %s %s on %s in %.2fs", name, spec.version, self.device, seconds)
        return predictor
