"""Result rows and the table the benchmark prints."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Row:
    section: str
    mode: str
    items: int
    seconds: float
    latencies_ms: list[float]
    mean_batch: float | None = None
    baseline: float | None = None  # items/s: raw forward length-sorted (rows 2, 3) or plain Celery (row 4)
    baseline_arrival: float | None = None  # items/s: raw forward in arrival order (rows 2, 3)
    peer: float | None = None  # items/s of LitServe at the same client concurrency (row 2)
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU µs per item: api, worker, clients

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def ratio(self) -> str:
        return f"{self.items_per_s / self.baseline:.2f}" if self.baseline else ""

    @property
    def ratio_peer(self) -> str:
        return f"{self.items_per_s / self.peer:.2f}" if self.peer else ""

    @property
    def ratio_arrival(self) -> str:
        return f"{self.items_per_s / self.baseline_arrival:.2f}" if self.baseline_arrival else ""


def table(rows: list[Row]) -> str:
    header = f"{'section':<28} {'mode':<26} {'items':>6} {'items/s':>9} {'p50 ms':>8} {'p95 ms':>8} " \
             f"{'p99 ms':>8} {'batch':>6} {'÷arr':>6} {'÷best':>6} {'÷peer':>6}"
    lines = [header, "-" * len(header)]
    for r in rows:
        batch = f"{r.mean_batch:.1f}" if r.mean_batch is not None else ""
        lines.append(f"{r.section:<28} {r.mode:<26} {r.items:>6} {r.items_per_s:>9.1f} {r.pct(50):>8.1f} "
                     f"{r.pct(95):>8.1f} {r.pct(99):>8.1f} {batch:>6} {r.ratio_arrival:>6} {r.ratio:>6} "
                     f"{r.ratio_peer:>6}")
    return "\n".join(lines)


def cpu_table(rows: list[Row]) -> str:
    """CPU per item of each part, for the rows that measured it. `worker ceiling`: the items/s one worker process
    could reach if nothing else ran (1 / its CPU per item): the bound on a host whose accelerator is faster."""
    header = f"{'section':<28} {'mode':<26} {'api µs':>8} {'worker µs':>10} {'clients µs':>11} {'worker ceiling':>15}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if not r.cpu_us:
            continue
        api, worker, clients = (r.cpu_us.get(k, float("nan")) for k in ("api", "worker", "clients"))
        ceiling = f"{1e6 / worker:,.0f}/s" if worker > 0 else ""
        lines.append(f"{r.section:<28} {r.mode:<26} {api:>8.0f} {worker:>10.0f} {clients:>11.0f} {ceiling:>15}")
    return "\n".join(lines)
