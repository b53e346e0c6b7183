"""CPU seconds each part of the stack spends per item: the API (gunicorn and its workers), the inference worker
and the benchmark's own clients. On this machine every part shares the same cores, so wall-clock throughput hides
which part would limit a bigger one (a GPU host): there, one worker process can serve at most about
1 / (its CPU per item) items a second, whatever the GPU does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.localstack import LocalStack

try:
    import psutil
except ImportError:  # the `bench` extra is not installed: the rows are measured without their CPU
    psutil = None


def _role(name: str) -> str | None:
    """The part a stack process belongs to: `api`, or `worker` for every inference worker process."""
    if name == "api":
        return "api"
    return "worker" if name == "worker" or name.startswith("worker-") else None


def _seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _tree_seconds(pid: int) -> float:
    """The process and its children (gunicorn's workers); a child that exits meanwhile is skipped."""
    try:
        root = psutil.Process(pid)
        total = _seconds(root)
        children = root.children(recursive=True)
    except psutil.Error:
        return 0.0
    for child in children:
        try:
            total += _seconds(child)
        except psutil.Error:
            continue
    return total


def _snapshot(stack: LocalStack) -> dict[str, float]:
    found = {"clients": _seconds(psutil.Process())}
    for name, process in stack.processes.items():
        role = _role(name)
        if role is not None:
            found[role] = found.get(role, 0.0) + _tree_seconds(process.pid)
    return found


@contextmanager
def cpu_per_item(stack: LocalStack, items: int) -> Iterator[dict[str, float]]:
    """Yields a dict that holds, once the block ends, µs of CPU per item for each part."""
    result: dict[str, float] = {}
    if psutil is None:
        yield result
        return
    before = _snapshot(stack)
    yield result
    after = _snapshot(stack)
    result.update({role: (after[role] - before[role]) / items * 1e6 for role in before if role in after})
