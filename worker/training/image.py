"""Train `pneumonia-xray`: SmallCNN on PneumoniaMNIST 28x28 (train split), best epoch chosen on the val split
by ROC AUC, temperature fitted on val logits."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import save_file
from tqdm import tqdm

from shared.modelspec import ModelSpec
from worker.predictors.cnn import SmallCNN
from worker.training import common

CHANNELS = (16, 32, 64)
ABSTAIN_BAND = (0.0, 0.65)
LABELS = ["normal", "pneumonia"]


def load_split(data_dir: Path, split: str) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    data = np.load(data_dir / "pneumoniamnist" / "pneumoniamnist-trainval.npz")
    images = data[f"{split}_images"].astype(np.float32) / 255.0
    return images, data[f"{split}_labels"].reshape(-1).astype(np.int64)


def shift_augment(batch: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Small random translations: radiographs are not always centred the same way."""
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=generator))
    return torch.roll(batch, shifts=(dy, dx), dims=(2, 3))


def evaluate(model: SmallCNN, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])


def train(data_dir: Path, out_dir: Path, *, seed: int = 13, epochs: int = 12) -> ModelSpec:
    common.seed_everything(seed)
    train_x, train_y = load_split(data_dir, "train")
    val_x, val_y = load_split(data_dir, "val")
    mean, std = float(train_x.mean()), float(train_x.std())
    xt = torch.from_numpy((train_x - mean) / std).unsqueeze(1)
    xv = torch.from_numpy((val_x - mean) / std).unsqueeze(1)
    yt = torch.from_numpy(train_y)
    model = SmallCNN(in_channels=1, channels=CHANNELS, num_classes=2, dropout=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, dict[str, torch.Tensor], int] = (-1.0, {}, -1)
    for epoch in tqdm(range(epochs), desc="training CNN", unit="epoch"):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(128):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(shift_augment(xt[idx], gen)), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
        auc = common.roc_auc(torch.softmax(evaluate(model, xv), -1)[:, 1].double().numpy(), val_y)
        if auc > best[0]:
            best = (auc, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch + 1)
    model.load_state_dict(best[1])
    val_logits = evaluate(model, xv)
    temperature = common.fit_temperature(val_logits, torch.from_numpy(val_y))
    probs = torch.softmax(val_logits / temperature, -1).double().numpy()
    metrics = {
        "val_accuracy": round(common.accuracy(probs.argmax(1), val_y), 4),
        "val_roc_auc": round(common.roc_auc(probs[:, 1], val_y), 4),
        "val_ece_calibrated": round(common.expected_calibration_error(probs, val_y), 4),
        "val_examples": len(val_y), "train_examples": len(train_y), "best_epoch": best[2],
        "chance_accuracy": round(float(max(val_y.mean(), 1 - val_y.mean())), 4),
        **common.abstain_stats(probs, val_y, ABSTAIN_BAND),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"))
    return common.write_model_dir(out_dir, _spec(mean, std, temperature, metrics, seed))


def _spec(mean: float, std: float, temperature: float, metrics: Mapping[str, object], seed: int) -> dict[str, object]:
    return {
        "name": "pneumonia-xray", "version": "1.0.0", "task": "image-classification",
        "architecture": "small-cnn", "labels": LABELS, "weights": "model.safetensors",
        "config": {"channels": list(CHANNELS), "dropout": 0.2},
        "preprocessing": {"color": "grayscale (luma for RGB; 16-bit stretched to its range)",
                          "crop": "centre square", "size": 28, "resample": "box (down) / bilinear (up)",
                          "mean": round(mean, 6), "std": round(std, 6)},
        "calibration": {"method": "temperature scaling on the val split", "temperature": round(temperature, 4)},
        "abstain_band": list(ABSTAIN_BAND),
        "limits": {"max_image_pixels": 40_000_000, "media_types": ["image/png", "image/jpeg"]},
        "card": {
            "intended_use": "Decision support only: flags possible pneumonia on a frontal chest radiograph for "
                            "prioritising review. Not a diagnosis; a radiologist must read every image.",
            "training_data": "PneumoniaMNIST from MedMNIST v2 (Yang et al., 2023; source: Kermany et al., 2018), "
                             "4,708 train / 524 val pediatric chest X-rays at 28x28; CC BY 4.0. Trained here "
                             f"(seed {seed}, `make train`), best epoch by val ROC AUC.",
            "metrics": metrics,
            "limitations": "28x28 input: fine detail is lost. Pediatric (1-5 years) anterior-posterior films from "
                           "one centre; adult and other centres' images are out of distribution. The val split "
                           "chose the epoch and the temperature, so its figures are slightly optimistic. Results "
                           f"whose top probability is at most {ABSTAIN_BAND[1]} are marked indeterminate.",
        },
    }
