"""Image classification with a CNN in plain torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from shared.errors import ModelConfigError
from shared.modelspec import ModelSpec
from worker.predictors.base import ForwardLock, calibrated_probabilities, compute_dtype
from worker.predictors.cnn import SmallCNN
from worker.predictors.explain import GradCam, heatmap_png
from worker.predictors.imaging import FloatImage, preprocess


class ImagePredictor:
    def __init__(self, spec: ModelSpec, device: torch.device, *, max_pixels: int) -> None:
        self.spec = spec
        self.device = device
        self._max_pixels = max_pixels
        pre = spec.preprocessing
        self._size = int(pre.get("size", 28))
        self._mean = float(pre.get("mean", 0.0))
        self._std = float(pre.get("std", 1.0))
        self._dtype = compute_dtype(device)
        self._model = self._load(spec).to(device=device, dtype=self._dtype).eval()
        if device.type == "cuda":
            self._model = self._model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._lock = ForwardLock()

    @staticmethod
    def _load(spec: ModelSpec) -> SmallCNN:
        cfg = spec.config
        model = SmallCNN(in_channels=1, channels=tuple(cfg.get("channels", (32, 64, 128))),
                         num_classes=len(spec.labels), dropout=float(cfg.get("dropout", 0.0)))
        try:
            model.load_state_dict(load_file(str(spec.weights_path())))
        except (RuntimeError, OSError) as exc:
            raise ModelConfigError(f"model {spec.name}: weights do not fit the declared CNN: {exc}") from exc
        return model

    def prepare(self, data: bytes, media_type: str | None) -> FloatImage:
        return preprocess(data, size=self._size, mean=self._mean, std=self._std, max_pixels=self._max_pixels)

    def size_of(self, item: FloatImage) -> int:
        return 1

    def explain(self, items: Sequence[FloatImage]) -> list[tuple[list[float], dict[str, Any]]]:
        """Probabilities and a Grad-CAM map of the last convolutional block for the predicted label."""
        if not items:
            return []
        batch = torch.from_numpy(np.stack(items)).unsqueeze(1).to(device=self.device, dtype=self._dtype)
        with self._lock:
            logits, cams = GradCam(self._model.features[-2])(self._model, batch, None)
        probabilities = calibrated_probabilities(logits, self.spec.temperature)
        out = []
        for probs, cam, target in zip(probabilities, cams, logits.argmax(dim=1).tolist(), strict=True):
            grid = cam.float().cpu().numpy()
            out.append((probs, {"method": "grad-cam", "target": self.spec.labels[target],
                                "grid": np.round(grid, 4).tolist(),
                                "heatmap_png_b64": heatmap_png(grid, self._size)}))
        return out

    def warmup_batches(self, max_batch_size: int) -> list[list[FloatImage]]:
        blank = np.zeros((self._size, self._size), dtype=np.float32)
        return [[blank] * size for size in (1, max_batch_size)]

    def predict(self, items: Sequence[FloatImage]) -> list[list[float]]:
        if not items:
            return []
        batch = torch.from_numpy(np.stack(items)).unsqueeze(1).to(device=self.device, dtype=self._dtype)
        if self.device.type == "cuda":
            batch = batch.to(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            logits = self._model(batch)
        return calibrated_probabilities(logits, self.spec.temperature)
