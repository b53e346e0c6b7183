"""Text classification: a Hugging Face encoder with a linear head on mean-pooled tokens, or any Hugging Face
sequence-classification checkpoint. Weights load from local files only."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from shared.errors import InvalidInput, ModelConfigError
from shared.modelspec import ModelSpec
from worker.predictors.base import ForwardLock, calibrated_probabilities, compute_dtype
from worker.predictors.explain import IG_STEPS, integrated_gradients, token_weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub; there is none


def resolve_encoder(spec: ModelSpec) -> Path:
    return spec.encoder_path()


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

    def explain(self, items: Sequence[list[int]]) -> list[tuple[list[float], dict[str, Any]]]:
        """Probabilities and integrated-gradients token weights towards the predicted label."""
        if not items:
            return []
        batch = self.tokenizer.pad({"input_ids": list(items)}, padding=True, return_tensors="pt").to(self.device)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        special = torch.tensor(self.tokenizer.all_special_ids, device=self.device)
        baseline = torch.where(torch.isin(ids, special), ids, torch.full_like(ids, self.tokenizer.pad_token_id))
        with self._lock:
            with torch.inference_mode():
                logits = self._logits(ids, mask)
            targets = logits.argmax(dim=1).clone()
            scores = integrated_gradients(self._logits_from_embeddings, self._embeddings(), input_ids=ids,
                                          attention_mask=mask, baseline_ids=baseline, targets=targets)
        probabilities = calibrated_probabilities(logits, self.spec.temperature)
        return [(probs, self._token_explanation(item, scores[i], int(targets[i])))
                for i, (item, probs) in enumerate(zip(items, probabilities, strict=True))]

    def _token_explanation(self, item: list[int], scores: torch.Tensor, target: int) -> dict[str, Any]:
        special = set(self.tokenizer.all_special_ids)
        kept = [(i, t) for i, t in enumerate(item) if t not in special]
        tokens = cast(list[str], self.tokenizer.convert_ids_to_tokens([t for _, t in kept]))
        weights = [float(scores[i]) for i, _ in kept]
        return {"method": "integrated-gradients", "steps": IG_STEPS, "target": self.spec.labels[target],
                "tokens": token_weights(tokens, weights)}

    def _embeddings(self) -> nn.Embedding:
        model: Any = self._classifier if self._classifier is not None else self._text_encoder().encoder
        embedding: nn.Embedding = model.get_input_embeddings()
        return embedding

    def _text_encoder(self) -> TextEncoder:
        assert self._encoder is not None and self._head is not None
        return self._encoder

    def _logits_from_embeddings(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self._classifier is not None:
            out: torch.Tensor = self._classifier(inputs_embeds=embeds, attention_mask=mask).logits
            return out
        encoder = self._text_encoder()
        hidden = encoder.encoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        pooled = mean_pool(hidden, mask)
        pooled = nn.functional.normalize(pooled, dim=-1) if encoder.normalize else pooled
        assert self._head is not None
        logits: torch.Tensor = self._head(pooled)
        return logits

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self._classifier is not None:
            out: torch.Tensor = self._classifier(input_ids=input_ids, attention_mask=attention_mask).logits
            return out
        assert self._encoder is not None and self._head is not None
        logits: torch.Tensor = self._head(self._encoder(input_ids, attention_mask))
        return logits
