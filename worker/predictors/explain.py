"""Explanations, computed for a whole batch at once.

- Text: integrated gradients (Sundararajan et al., 2017) on the word embeddings, from a [PAD] baseline, with a
  fixed number of steps (bounded cost: steps x one forward and backward). One weight per token: positive pushed
  towards the predicted label.
- Images: Grad-CAM (Selvaraju et al., 2017) on the CNN's last convolutional block, with forward hooks: the raw
  grid and a small grayscale PNG heat map at the model's input size (base64).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

IG_STEPS = 8


def integrated_gradients(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], embed: nn.Embedding, *, input_ids: torch.Tensor,
    attention_mask: torch.Tensor, baseline_ids: torch.Tensor, targets: torch.Tensor, steps: int = IG_STEPS,
) -> torch.Tensor:
    """Per-token attributions (batch, seq) of `forward(inputs_embeds, mask)`'s target logits."""
    with torch.no_grad():
        x, x0 = embed(input_ids), embed(baseline_ids)
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):  # right Riemann sum over the straight path x0 → x
        point = (x0 + (k / steps) * (x - x0)).detach().requires_grad_(True)
        logits = forward(point, attention_mask)
        chosen = logits.gather(1, targets.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(chosen, point)
        total += grad
    attributions: torch.Tensor = ((x - x0) * total / steps).sum(dim=-1) * attention_mask.to(x.dtype)
    return attributions


def token_weights(tokens: list[str], scores: list[float]) -> list[dict[str, Any]]:
    """[{token, weight}] in text order, scaled so the largest |weight| is 1."""
    peak = max((abs(s) for s in scores), default=0.0) or 1.0
    return [{"token": t, "weight": round(s / peak, 4)} for t, s in zip(tokens, scores, strict=True)]


class GradCam:
    """Captures a layer's activations and their gradients with hooks (no model changes)."""

    def __init__(self, layer: nn.Module) -> None:
        self.activations: torch.Tensor | None = None
        self._layer = layer

    def __call__(self, model: nn.Module, batch: torch.Tensor, targets: torch.Tensor | None) -> tuple[
            torch.Tensor, torch.Tensor]:
        """Logits and class-activation maps (batch, h, w) in [0, 1]."""
        handle = self._layer.register_forward_hook(self._keep)
        try:
            with torch.enable_grad():
                logits = model(batch)
                chosen = logits.argmax(dim=1) if targets is None else targets
                assert self.activations is not None
                (grads,) = torch.autograd.grad(logits.gather(1, chosen.unsqueeze(1)).sum(), self.activations)
        finally:
            handle.remove()
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * self.activations).sum(dim=1))
        peak = cam.flatten(1).max(dim=1).values.clamp(min=1e-12)
        return logits.detach(), (cam / peak[:, None, None]).detach()

    def _keep(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self.activations = output


def heatmap_png(cam: np.ndarray[Any, Any], size: int) -> str:
    """A grayscale PNG (white = most important) at `size` x `size`, base64."""
    image = Image.fromarray((cam * 255).astype(np.uint8), mode="L").resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()
