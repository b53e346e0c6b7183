"""The Celery app factory and its reliability settings.

- acks late + reject on worker lost: a message is acknowledged only after its results are stored, so a killed
  worker's jobs are redelivered (results are written with compare-and-set, so never twice).
- threads pool: one process holds the models; never fork after CUDA is initialised.
- prefetch 1 per thread: a busy worker does not hoard messages another worker could run.
- queues listed stat → urgent → routine with the 'priority' order strategy: stat is always polled first.
"""

from __future__ import annotations

import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from shared.db import init_db, make_engine
from shared.notify import Publisher
from shared.queues import QUEUE_BY_PRIORITY
from shared.settings import Settings
from shared.status import Priority
from worker.engine import InferenceEngine
from worker.registry import Registry
from worker.service import Runtime

# A message not acknowledged within this long is redelivered by Redis. Longer than any batch can run.
VISIBILITY_TIMEOUT_S = 3600


def create_celery(settings: Settings) -> Celery:
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
    )
    app.conf.medq_settings = settings
    from worker.tasks import register_tasks

    register_tasks(app)
    return app


_runtime_lock = threading.Lock()


def runtime_for(app: Celery) -> Runtime:
    """The process's Runtime, built on first use (so importing this module loads no model)."""
    with _runtime_lock:
        runtime: Runtime | None = getattr(app, "medq_runtime", None)
        if runtime is None:
            settings: Settings = app.conf.medq_settings
            engine = make_engine(settings.database_url)
            init_db(engine)
            inference = InferenceEngine(Registry(settings), settings)
            runtime = Runtime(settings=settings, engine=engine, inference=inference,
                              notify=Publisher(settings.redis_url).finished)
            app.medq_runtime = runtime
        return runtime


@worker_ready.connect  # type: ignore[untyped-decorator]
def _preload(sender: object = None, **_: object) -> None:
    """Load and warm every model before the first job, so the first patients do not pay for it."""
    app = getattr(sender, "app", None)
    if app is not None and app.conf.get("medq_settings") and app.conf.medq_settings.preload_models:
        runtime_for(app).inference.warmup()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _drain(sender: object = None, **_: object) -> None:
    """Celery has let its task threads finish; stop the inference threads after what they hold."""
    app = getattr(sender, "app", None)
    runtime: Runtime | None = getattr(app, "medq_runtime", None)
    if runtime is not None:
        runtime.inference.close()
