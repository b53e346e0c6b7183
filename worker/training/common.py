"""Helpers shared by the training scripts: seeds, folds, metrics, temperature fitting, writing model dirs."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from shared.modelspec import ModelSpec, file_digest

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stratified_folds(labels: NDArray[np.int64], k: int, seed: int) -> list[NDArray[np.int64]]:
    """Index arrays of k folds with each class spread evenly."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        for i, j in enumerate(idx):
            folds[i % k].append(int(j))
    return [np.array(sorted(f), dtype=np.int64) for f in folds]


def accuracy(pred: NDArray[np.int64], true: NDArray[np.int64]) -> float:
    return float((pred == true).mean())


def macro_f1(pred: NDArray[np.int64], true: NDArray[np.int64], n_classes: int) -> float:
    scores = []
    for c in range(n_classes):
        tp = float(((pred == c) & (true == c)).sum())
        fp = float(((pred == c) & (true != c)).sum())
        fn = float(((pred != c) & (true == c)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def roc_auc(score: NDArray[np.float64], true: NDArray[np.int64]) -> float:
    """Mann-Whitney form of the ROC AUC, with ties counted as half."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = true == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising held-out negative log-likelihood (Guo et al., 2017)."""
    logits = logits.detach().clone()  # may come from inference_mode, which autograd refuses
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def expected_calibration_error(probs: NDArray[np.float64], true: NDArray[np.int64], bins: int = 10) -> float:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == true
    ece = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for low, high in itertools.pairwise(edges):
        mask = (conf > low) & (conf <= high)
        if mask.any():
            ece += float(mask.mean()) * abs(float(correct[mask].mean()) - float(conf[mask].mean()))
    return ece


def abstain_stats(probs: NDArray[np.float64], true: NDArray[np.int64], band: tuple[float, float]) -> dict[str, float]:
    top = probs.max(axis=1)
    abstain = (top >= band[0]) & (top <= band[1])
    kept = ~abstain
    return {
        "abstain_rate": round(float(abstain.mean()), 4),
        "accuracy_when_not_abstaining": round(accuracy(probs[kept].argmax(axis=1), true[kept]), 4)
        if kept.any() else 0.0,
    }


# Hand-curated sections of model.json that training does not produce: kept from the file a retrain replaces.
CURATED = ("codes", "dicom")


def write_model_dir(directory: Path, spec: dict[str, Any]) -> ModelSpec:
    """Write model.json with the weights' digest (keeping the curated sections of the one it replaces), then read
    it back through the real parser."""
    spec = dict(spec)
    previous = directory / "model.json"
    if previous.exists():
        earlier = json.loads(previous.read_text(encoding="utf-8"))
        spec.update({key: earlier[key] for key in CURATED if key in earlier and key not in spec})
    spec["sha256"] = file_digest(directory / spec["weights"])
    (directory / "model.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    from shared.modelspec import read_spec

    return read_spec(directory)
