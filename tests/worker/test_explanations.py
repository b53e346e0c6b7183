"""Explanation shapes and meaning, on the shipped models."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from tests.images import png_bytes
from tests.worker.test_predictors import image_predictor, text_predictor
from worker.predictors.explain import GradCam, integrated_gradients


def test_text_explanation_has_one_weight_per_token_and_agrees_with_predict() -> None:
    predictor = text_predictor()
    texts = [b"Glioblastoma resected; adjuvant temozolomide.", b"Seizures and aphasia after stroke."]
    items = [predictor.prepare(t, None) for t in texts]
    explained = predictor.explain(items)
    plain = predictor.predict(items)
    assert len(explained) == 2
    for (probs, explanation), item, reference in zip(explained, items, plain, strict=True):
        assert np.allclose(probs, reference, atol=1e-4)
        assert explanation["method"] == "integrated-gradients"
        assert explanation["target"] == predictor.spec.labels[int(np.argmax(probs))]
        tokens = explanation["tokens"]
        assert len(tokens) == len(item) - 2  # [CLS] and [SEP] are not explained
        assert max(abs(t["weight"]) for t in tokens) == 1.0
        assert all(not t["token"].startswith("[") for t in tokens)


def test_integrated_gradients_is_complete_for_a_linear_model() -> None:
    """For a linear model the attributions add up exactly to f(x) - f(baseline) (the completeness axiom)."""
    embed = torch.nn.Embedding(10, 3)
    weights = torch.randn(3, 2)

    def forward(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x * mask.unsqueeze(-1)).sum(dim=1) @ weights

    ids, base = torch.tensor([[1, 2, 3]]), torch.tensor([[0, 0, 0]])
    mask, target = torch.ones_like(ids), torch.tensor([1])
    scores = integrated_gradients(forward, embed, input_ids=ids, attention_mask=mask, baseline_ids=base,
                                  targets=target, steps=4)
    with torch.no_grad():
        gap = forward(embed(ids), mask)[0, 1] - forward(embed(base), mask)[0, 1]
    assert torch.allclose(scores.sum(), gap, atol=1e-5)


def test_image_explanation_is_a_grad_cam_grid_and_a_small_png() -> None:
    predictor = image_predictor()
    items = [predictor.prepare(png_bytes(seed=s), "image/png") for s in (1, 2)]
    explained = predictor.explain(items)
    for (probs, explanation), reference in zip(explained, predictor.predict(items), strict=True):
        assert np.allclose(probs, reference, atol=1e-5)
        grid = np.array(explanation["grid"])
        assert grid.ndim == 2 and grid.shape[0] == grid.shape[1] and grid.min() >= 0 and grid.max() <= 1
        png = Image.open(io.BytesIO(base64.b64decode(explanation["heatmap_png_b64"])))
        assert png.size == (28, 28) and png.mode == "L"


def test_grad_cam_hooks_are_removed() -> None:
    model = image_predictor()._model
    layer = model.features[-2]
    GradCam(layer)(model, torch.zeros(1, 1, 28, 28), None)
    assert not layer._forward_hooks
