"""Queue and task names: the only coupling between the API (which enqueues by name) and the workers."""

from __future__ import annotations

from shared.status import Priority

TASK_RUN_JOBS = "medq.run_jobs"
TASK_DELIVER_WEBHOOK = "medq.deliver_webhook"
TASK_PURGE_EXPIRED = "medq.purge_expired_data"

# Webhook deliveries have their own queue and their own worker, so a slow or dead receiver never holds a thread
# that inference needs (and an inference backlog never delays a callback).
WEBHOOK_QUEUE = "medq.webhooks"

QUEUE_BY_PRIORITY: dict[Priority, str] = {
    Priority.STAT: "medq.stat",
    Priority.URGENT: "medq.urgent",
    Priority.ROUTINE: "medq.routine",
}

# Workers list the queues most urgent first.
ALL_QUEUES: tuple[str, ...] = tuple(QUEUE_BY_PRIORITY[p] for p in Priority.by_urgency())


def queue_for(priority: Priority) -> str:
    return QUEUE_BY_PRIORITY[priority]
