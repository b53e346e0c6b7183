"""Throughput and latency of medq against the model's own batched forward pass, in one run on one machine:

  (1) raw batched forward of the model on a fixed synthetic clinical-text workload (mixed lengths);
  (2) end to end through the API + Redis + worker, single-item jobs at several client concurrencies;
  (3) the same with /v1/jobs/batch;
  (4) a no-op model: the queue's own ceiling, beside a plain one-task-per-item Celery worker.

  python -m bench.throughput [--model disease-category|bert-base-random] [--device cpu|cuda|auto] [--items N]
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import e2e, raw
from bench.models import BERT_BASE, NOOP, prepare_model_dir
from bench.stats import Row, cpu_table, table
from bench.workload import clinical_texts
from shared.localstack import local_stack


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="disease-category", help=f"a shipped model or {BERT_BASE}")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--items", type=int, default=256, help="items per measurement")
    parser.add_argument("--batch-sizes", default="1,8,32,64", help="raw forward batch sizes")
    parser.add_argument("--concurrency", default="1,16,64", help="end-to-end client concurrencies")
    parser.add_argument("--engine-batch", type=int, default=32, help="the worker's max batch size")
    parser.add_argument("--noop-items", type=int, default=2000)
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn worker processes of the API")
    parser.add_argument("--worker-processes", type=int, default=1,
                        help="inference worker processes sharing the device (see docs/batching.md)")
    parser.add_argument("--postgres", metavar="URL",
                        help="run the stack on a fresh database created on this Postgres server (default: SQLite)")
    parser.add_argument("--skip-e2e", action="store_true", help="only the raw forward pass (1)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    return parser.parse_args()


def main() -> None:
    args = _args()
    sizes = sorted({int(s) for s in args.batch_sizes.split(",")} | {args.engine_batch})
    levels = [int(c) for c in args.concurrency.split(",")]
    texts = clinical_texts(max(args.items, 256))
    with tempfile.TemporaryDirectory(prefix="medq-bench-") as tmp:
        model_dir = prepare_model_dir(Path(tmp), bert_base=args.model == BERT_BASE)
        predictor = raw.load(model_dir, args.model, args.device)
        rows = raw.raw_forward(predictor, texts[: args.items], sizes)
        del predictor
        gc.collect()
        if not args.skip_e2e:
            rows += _end_to_end(args, Path(tmp), model_dir, texts, levels)
    _compare(rows, args.engine_batch)
    print(f"\nmodel {args.model} on {args.device}; worker max batch {args.engine_batch}; {args.api_workers} API and "
          f"{args.worker_processes} inference worker process(es). ÷arr: items/s ÷ raw forward "
          "at the worker's batch size in arrival order; ÷best: ÷ the same length-sorted (rows 2, 3) or ÷ plain "
          "Celery (row 4)\n")
    print(table(rows))
    if any(r.cpu_us for r in rows):
        print("\nCPU per item of each part (they all share this machine's cores; see docs/batching.md)\n")
        print(cpu_table(rows))
    elif not args.skip_e2e:
        print("\npsutil is not installed (pip install -e '.[bench]'): CPU per item not measured")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([asdict(r) | {"items_per_s": r.items_per_s} for r in rows], indent=2))


def _end_to_end(args: argparse.Namespace, tmp: Path, model_dir: Path, texts: list[str],
                levels: list[int]) -> list[Row]:
    env = {"MEDQ_MODEL_DIR": str(model_dir), "MEDQ_DEVICE": args.device,
           "MEDQ_BATCH_MAX_SIZE": str(args.engine_batch),
           "MEDQ_WORKER_CONCURRENCY": str(max(*levels, args.engine_batch)), "MEDQ_LOG_LEVEL": "WARNING"}
    if args.postgres:
        env["MEDQ_DATABASE_URL"] = fresh_postgres_database(args.postgres)
    rows: list[Row] = []
    with local_stack(tmp / "stack", env=env, api_threads=max(levels) + 8, api_workers=args.api_workers,
                     worker_processes=args.worker_processes) as stack:
        e2e.warm_up(stack, [args.model, NOOP])
        for c in levels:
            rows.append(e2e.singles(stack, args.model, texts, concurrency=c, n=args.items, section="2 end to end"))
        for c in levels:
            n = max(args.items, c * args.engine_batch)
            rows.append(e2e.batches(stack, args.model, texts, concurrency=c, n=n, batch_size=args.engine_batch,
                                    section="3 end to end, batches"))
        noop_n = args.noop_items
        rows.append(e2e.singles(stack, NOOP, texts, concurrency=max(levels), n=noop_n // 4,
                                section="4 queue ceiling (no-op)"))
        rows.append(e2e.batches(stack, NOOP, texts, concurrency=4, n=noop_n, batch_size=256,
                                section="4 queue ceiling (no-op)"))
        rows.append(e2e.plain_celery(stack, NOOP, n=noop_n))
    if _have_litserve():
        rows += e2e.litserve(str(model_dir), args.model, texts, levels=levels, n=args.items,
                             max_batch=args.engine_batch, logs=str(tmp / "stack"))
    else:
        print("LitServe is not installed (pip install -e '.[bench]'): peer rows skipped")
    return rows


def _have_litserve() -> bool:
    import importlib.util

    return importlib.util.find_spec("litserve") is not None


def fresh_postgres_database(url: str) -> str:
    import uuid

    from sqlalchemy import create_engine, make_url, text

    name = f"medq_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _compare(rows: list[Row], engine_batch: int) -> None:
    # The stricter reference: the model's best batched speed at the worker's batch size (length-sorted input).
    raw_rows = {r.mode: r for r in rows if r.section == "1 raw forward"}
    reference = raw_rows.get(f"batch {engine_batch}, length-sorted") or max(raw_rows.values(),
                                                                            key=lambda r: r.items_per_s)
    arrival = raw_rows.get(f"batch {engine_batch}, arrival order")
    plain = next((r for r in rows if r.mode.startswith("plain")), None)
    peers = {r.mode.split(", ")[1]: r for r in rows if r.section.startswith("5")}
    for row in rows:
        if row.section.startswith("2") and row.mode.split(", ")[1] in peers:
            row.peer = peers[row.mode.split(", ")[1]].items_per_s
        if row.section.startswith(("2", "3")):
            row.baseline = reference.items_per_s
            row.baseline_arrival = arrival.items_per_s if arrival else None
        elif row.section.startswith("4") and plain is not None and row is not plain:
            row.baseline = plain.items_per_s


if __name__ == "__main__":
    main()
