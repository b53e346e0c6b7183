"""The Celery app factory and its reliability settings.

- acks late + reject on worker lost: a message is acknowledged only after its results are stored, so a killed
  worker's jobs are redelivered (results are written with compare-and-set, so never twice).
- threads pool: one process holds the models; never fork after CUDA is initialised.
- prefetch 1 per thread: a busy worker does not hoard messages another worker could run.
- queues listed stat → urgent → routine with the 'priority' order strategy: stat is always polled first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from celery import Celery
from celery.signals import setup_logging, worker_ready, worker_shutdown
from sqlalchemy.engine import Engine

from shared import crypto
from shared.db import init_db, make_engine
from shared.notify import Publisher
from shared.queues import QUEUE_BY_PRIORITY, TASK_DELIVER_WEBHOOK, TASK_PURGE_EXPIRED, WEBHOOK_QUEUE
from shared.settings import Settings
from shared.status import Priority
from worker import metrics
from worker.dispatcher import Dispatcher
from worker.engine import InferenceEngine
from worker.registry import Registry
from worker.service import Runtime
from worker.sweeper import TASK_SWEEP
from worker.webhooks import Delivery

# A message not acknowledged within this long is redelivered by Redis. Longer than any batch can run.
VISIBILITY_TIMEOUT_S = 3600


def create_celery(settings: Settings, *, role: str = "inference") -> Celery:
    """`role` is "inference" (runs jobs) or "webhooks" (delivers webhooks and runs the dispatcher)."""
    crypto.install_from(settings)
    app = Celery("medq", broker=settings.redis_url, set_as_current=True)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE_BY_PRIORITY[Priority.ROUTINE],
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_pool="threads",
        worker_send_task_events=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S,
                                  "queue_order_strategy": "priority"},
        worker_hijack_root_logger=False,
        task_routes={TASK_DELIVER_WEBHOOK: {"queue": WEBHOOK_QUEUE}, TASK_PURGE_EXPIRED: {"queue": WEBHOOK_QUEUE},
                     TASK_SWEEP: {"queue": WEBHOOK_QUEUE}},
        # Run by the beat embedded in the webhook worker (python -m worker webhooks). The sweeper requeues the
        # jobs of killed workers and lost messages (docs/reliability.md). Sweeps are idempotent; the expiry only
        # bounds how many pile up behind a webhook backlog.
        beat_schedule={"purge-expired-data": {"task": TASK_PURGE_EXPIRED, "schedule": settings.retention_sweep_s},
                       "sweep-stuck-jobs": {"task": TASK_SWEEP, "schedule": settings.sweep_interval_s,
                                            "options": {"expires": settings.sweep_interval_s * 10}}},
    )
    app.conf.medq_settings = settings
    app.conf.medq_role = role
    from worker.tasks import register_tasks

    register_tasks(app)
    return app


_runtime_lock = threading.Lock()


T = TypeVar("T")


def _once(app: Celery, attribute: str, build: Callable[[Settings, Engine], T]) -> T:
    """What the process holds for its lifetime, built on first use (so importing this module loads no model)."""
    with _runtime_lock:
        found: T | None = getattr(app, attribute, None)
        if found is None:
            settings: Settings = app.conf.medq_settings
            engine = make_engine(settings.database_url)
            init_db(engine)
            found = build(settings, engine)
            setattr(app, attribute, found)
        return found


def runtime_for(app: Celery) -> Runtime:
    """The inference worker's Runtime: models, batchers, notifications."""
    return _once(app, "medq_runtime", lambda settings, engine: Runtime(
        settings=settings, engine=engine, inference=InferenceEngine(Registry(settings), settings),
        notify=Publisher(settings.redis_url).finished, send_webhooks=lambda ids: send_deliveries(app, ids)))


def delivery_for(app: Celery) -> Delivery:
    """The webhook worker's Delivery (database engine and pooled HTTP client)."""
    return _once(app, "medq_delivery", lambda settings, engine: Delivery(settings=settings, engine=engine))


def send_deliveries(app: Celery, event_ids: list[str]) -> None:
    for event_id in event_ids:
        app.send_task(TASK_DELIVER_WEBHOOK, args=[event_id], queue=WEBHOOK_QUEUE)


@setup_logging.connect  # type: ignore[untyped-decorator]
def _own_logging(**_: object) -> None:
    """Connected, so Celery leaves logging alone: `python -m worker` configures JSON logs with request ids."""


@worker_ready.connect  # type: ignore[untyped-decorator]
def _preload(sender: object = None, **_: object) -> None:
    """Inference: load and warm every model before the first job, so the first patients do not pay for it.
    Webhooks: start the dispatcher."""
    app = getattr(sender, "app", None)
    if app is None or not app.conf.get("medq_settings"):
        return
    settings: Settings = app.conf.medq_settings
    webhooks = app.conf.get("medq_role") == "webhooks"
    metrics.serve(settings.webhook_metrics_port if webhooks else settings.worker_metrics_port,
                  settings.metrics_address)
    if webhooks:
        delivery = delivery_for(app)
        app.medq_dispatcher = Dispatcher(delivery.engine, delivery.settings, lambda ids: send_deliveries(app, ids))
        app.medq_dispatcher.start()
    elif settings.preload_models:
        runtime_for(app).inference.warmup()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _drain(sender: object = None, **_: object) -> None:
    """Celery has let its task threads finish; stop the inference threads after what they hold."""
    app = getattr(sender, "app", None)
    runtime: Runtime | None = getattr(app, "medq_runtime", None)
    if runtime is not None:
        runtime.inference.close()
    dispatcher: Dispatcher | None = getattr(app, "medq_dispatcher", None)
    if dispatcher is not None:
        dispatcher.stop()
