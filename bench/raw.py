"""(1) The model's own batched forward pass: the ceiling end-to-end figures are compared with."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from bench.stats import Row
from shared.modelspec import discover
from worker.predictors.base import Predictor, pick_device
from worker.registry import build_predictor


def load(model_dir: Path, model: str, device: str) -> Predictor:
    return build_predictor(discover(model_dir)[model], pick_device(device), max_pixels=40_000_000)


def raw_forward(predictor: Predictor, texts: list[str], batch_sizes: list[int]) -> list[Row]:
    """Forward time only (tokenising happens in parallel task threads end to end): batches of the workload in
    arrival order, and batches of the workload sorted by length (the best case for padding)."""
    prepared = [predictor.prepare(t.encode(), None) for t in texts]
    for batch in predictor.warmup_batches(max(batch_sizes)):
        predictor.predict(batch)
    by_length = sorted(prepared, key=predictor.size_of)
    rows = []
    for order, items in (("arrival order", prepared), ("length-sorted", by_length)):
        rows += [_measure(predictor, items, size, order) for size in batch_sizes]
    # What `explain: true` costs: the same forward plus integrated gradients (or Grad-CAM for images).
    rows += [_measure(predictor, by_length[:64], size, "length-sorted", explain=True) for size in (1, 8)]
    return rows


def _measure(predictor: Predictor, prepared: list[object], size: int, order: str, *, explain: bool = False) -> Row:
    chunks = [prepared[i : i + size] for i in range(0, len(prepared), size)]
    latencies: list[float] = []
    for chunk in tqdm(chunks, desc=f"{'explain' if explain else 'raw forward'}, batch {size}, {order}", unit="batch",
                      leave=False):
        started = time.perf_counter()
        (predictor.explain if explain else predictor.predict)(chunk)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        latencies.append((time.perf_counter() - started) * 1000)
    section = "1 raw forward + explain" if explain else "1 raw forward"
    return Row(section, f"batch {size}, {order}", len(prepared), sum(latencies) / 1000, latencies,
               mean_batch=float(size))
