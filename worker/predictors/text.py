"""Text classification: a Hugging Face encoder with a linear head on mean-pooled tokens, or any Hugging Face
sequence-classification checkpoint. Weights load from local files only."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from shared.errors import InvalidInput, ModelConfigError
from shared.modelspec import ModelSpec
from worker.predictors.base import ForwardLock, calibrated_probabilities, compute_dtype

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub; there is none


def resolve_encoder(spec: ModelSpec) -> Path:
    """'package:<module>' names an installed package whose `get_model_path()` gives the folder."""
    ref = spec.encoder or spec.weights
    if ref.startswith("package:"):
        try:
            module = importlib.import_module(ref.removeprefix("package:"))
        except ImportError as exc:
            raise ModelConfigError(f"model {spec.name}: encoder package {ref} is not installed") from exc
        return Path(module.get_model_path())
    assert spec.directory is not None
    return spec.directory / ref


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class TextEncoder(nn.Module):
    """Encoder → mean pooling → optional L2 normalisation: the sentence embedding the head was trained on."""

    def __init__(self, path: Path, *, normalize: bool) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


class TextPredictor:
    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.max_length = int(spec.preprocessing.get("max_length", 256))
        self._classifier: nn.Module | None = None
        self._encoder: TextEncoder | None = None
        self._head: nn.Linear | None = None
        if spec.architecture == "hf-sequence-classification":
            path = spec.weights_path()
            self._classifier = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        else:
            path = resolve_encoder(spec)
            self._encoder = TextEncoder(path, normalize=bool(spec.config.get("normalize", True)))
            self._head = self._load_head(spec)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        modules = [m for m in (self._classifier, self._encoder, self._head) if m is not None]
        nn.ModuleList(modules).to(device=device, dtype=compute_dtype(device)).eval()
        self._lock = ForwardLock()

    @staticmethod
    def _load_head(spec: ModelSpec) -> nn.Linear:
        state = load_file(str(spec.weights_path()))
        try:
            weight, bias = state["weight"], state["bias"]
        except KeyError as exc:
            raise ModelConfigError(f"model {spec.name}: head weights need 'weight' and 'bias'") from exc
        if weight.shape[0] != len(spec.labels):
            raise ModelConfigError(f"model {spec.name}: head has {weight.shape[0]} outputs for "
                                   f"{len(spec.labels)} labels")
        head = nn.Linear(weight.shape[1], weight.shape[0])
        head.load_state_dict({"weight": weight, "bias": bias})
        return head

    def prepare(self, data: bytes, media_type: str | None) -> list[int]:
        """Token ids, truncated to max_length: tokenising here (in the caller's thread) keeps the inference
        thread on the forward pass and tells the batcher each item's length."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the stored text is not UTF-8") from exc
        if not text.strip():
            raise InvalidInput("the text is empty")
        ids: list[int] = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        return ids

    def size_of(self, item: list[int]) -> int:
        return len(item)

    def warmup_batches(self, max_batch_size: int) -> list[list[list[int]]]:
        filler = cast(int, self.tokenizer.convert_tokens_to_ids("the"))
        buckets = [n for n in (16, 64, 128, 256, 512) if n <= self.max_length] or [self.max_length]
        return [[[filler] * length] * size for length in buckets for size in (1, max_batch_size)]

    def predict(self, items: Sequence[list[int]]) -> list[list[float]]:
        if not items:
            return []
        # Dynamic padding: pad to the longest item of this batch, not to max_length.
        batch = self.tokenizer.pad({"input_ids": list(items)}, padding=True, return_tensors="pt").to(self.device)
        with self._lock, torch.inference_mode():
            logits = self._logits(batch["input_ids"], batch["attention_mask"])
        return calibrated_probabilities(logits, self.spec.temperature)

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self._classifier is not None:
            out: torch.Tensor = self._classifier(input_ids=input_ids, attention_mask=attention_mask).logits
            return out
        assert self._encoder is not None and self._head is not None
        logits: torch.Tensor = self._head(self._encoder(input_ids, attention_mask))
        return logits
