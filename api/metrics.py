"""API metrics (Prometheus) at `/metrics`. Under gunicorn every worker process writes its samples to
PROMETHEUS_MULTIPROC_DIR (set by `api/gunicorn_config.py`) and `/metrics` merges them, so any process answers with
the whole API's figures. Labels are route templates (`/v1/jobs/<job_id>`), never ids, so cardinality stays small."""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from api.openapi import OPERATIONS, documented
from shared.models import Job

bp = Blueprint("metrics", __name__)

REQUESTS = Counter("medq_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("medq_http_request_duration_seconds", "Time to answer", ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ACCEPTED = Counter("medq_jobs_accepted_total", "Jobs accepted (202)", ["model", "priority"])


def register(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_observe)
    app.register_blueprint(bp)


def jobs_accepted(jobs: list[Job]) -> None:
    for job in jobs:
        ACCEPTED.labels(job.model, job.priority).inc()


@bp.get("/metrics")
@documented("metrics", tag=OPERATIONS, public=True, ok={200: (None, "The metrics, Prometheus text format.")})
def metrics() -> Response:
    """Prometheus metrics of the API.

    Requests by route template, method and status, their latency, and jobs accepted by model and priority;
    merged across gunicorn workers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    if route != "/metrics":
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
    return response
