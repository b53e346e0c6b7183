"""Worker metrics (Prometheus), served on the worker's own port. A worker is one process (threads pool), so the
default registry is right; the names carry the `medq_worker_` prefix."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from worker.batching import BatchStats

log = logging.getLogger(__name__)

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)

QUEUE_DELAY = Histogram("medq_worker_queue_delay_seconds", "From submission to the start of inference",
                        ["model", "priority"], buckets=_SECONDS)
BATCH_SIZE = Histogram("medq_worker_batch_size", "Items per forward pass", ["model"], buckets=_SIZES)
PADDING = Histogram("medq_worker_padding_ratio", "Padded tokens / real tokens per text batch (1 = no padding)",
                    ["model"], buckets=(1, 1.1, 1.25, 1.5, 2, 3, 5))
FORWARD = Histogram("medq_worker_forward_seconds", "Time of one forward pass", ["model"], buckets=_SECONDS)
ITEMS = Counter("medq_worker_items_total", "Items run through a model (rate() gives items/s)", ["model"])
JOBS = Counter("medq_worker_jobs_total", "Jobs finished by the worker, by outcome", ["model", "outcome"])
WEBHOOKS = Counter("medq_worker_webhook_attempts_total", "Webhook delivery attempts, by outcome", ["outcome"])
MODEL_LOAD = Gauge("medq_worker_model_load_seconds", "How long loading the model took", ["model"])


def record_batch(model: str, stats: BatchStats) -> None:
    BATCH_SIZE.labels(model).observe(stats.size)
    FORWARD.labels(model).observe(stats.seconds)
    ITEMS.labels(model).inc(stats.size)
    if stats.real_tokens:
        PADDING.labels(model).observe(stats.padded_tokens / stats.real_tokens)


def serve(port: int, address: str) -> None:
    """Expose /metrics on `port` (0 = off). A port in use is logged, not fatal: metrics never stop inference."""
    if port <= 0:
        return
    try:
        start_http_server(port, addr=address)
    except OSError as exc:
        log.warning("worker metrics not served on port %d: %s", port, exc)
