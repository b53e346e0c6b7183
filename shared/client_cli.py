"""`medq submit` and `medq jobs …`: the HTTP client (`shared.client`) from the command line.

The server and key come from --url/--key, else MEDQ_URL (default http://127.0.0.1:8000) and MEDQ_API_KEY, else
MEDQ_DEMO_KEY or the demo key `make run` keeps in var/demo.key. Answers are printed as JSON on stdout; errors are
one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.client import TERMINAL, MedqClient, MedqClientError

DEFAULT_URL = "http://127.0.0.1:8000"
DEMO_KEY_FILE = Path(__file__).resolve().parent.parent / "var" / "demo.key"
PRIORITIES = ("stat", "urgent", "routine")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled", "expired")
MAX_PREFER_WAIT = 60  # the contract's cap on Prefer: wait; longer waits continue by polling

Handler = Callable[[MedqClient, argparse.Namespace], Any]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `submit` and `jobs list|get|cancel|delete|wait` to the `medq` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the API's base URL (env MEDQ_URL, default {DEFAULT_URL})")
    common.add_argument("--key", help="API key (env MEDQ_API_KEY, else var/demo.key)")
    common.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="how long --wait waits for jobs to finish (default 300 s)")
    _submit_parser(subparsers, common)
    jobs = subparsers.add_parser("jobs", help="list, show, cancel or erase jobs over the API").add_subparsers()
    listing = jobs.add_parser("list", parents=[common], help="jobs, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--model")
    listing.add_argument("--external-id")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.set_defaults(func=_command(lambda c, a: c.list(status=a.status, model=a.model, external_id=a.external_id,
                                                           limit=a.limit, cursor=a.cursor)))
    verbs: dict[str, tuple[str, Handler]] = {
        "get": ("show one job", lambda c, a: c.get(a.id)),
        "cancel": ("cancel a queued or running job", lambda c, a: c.cancel(a.id)),
        "delete": ("erase a job's input and result", _delete),
        "wait": ("wait until a job is finished", lambda c, a: c.wait(a.id, timeout=a.timeout)),
    }
    for name, (text, handler) in verbs.items():
        verb = jobs.add_parser(name, parents=[common], help=text)
        verb.add_argument("id")
        verb.set_defaults(func=_command(handler))


def _delete(client: MedqClient, args: argparse.Namespace) -> dict[str, Any]:
    client.delete(args.id)  # 204: nothing to print but what was done
    return {"deleted": args.id}


def _submit_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                   common: argparse.ArgumentParser) -> None:
    submit = subparsers.add_parser(
        "submit", parents=[common], help="submit a note, an image or a batch to the API",
        description="One --text or --file makes one job; several --file or --batch FILE.jsonl make a batch (one "
                    "JSON object a line: {\"text\": ...} or {\"file\": PATH}, optional \"external_id\"). A single "
                    "job is printed as accepted unless --wait; a batch waits with a progress bar unless --no-wait.")
    submit.add_argument("--model", required=True)
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the clinical text")
    source.add_argument("--file", action="append", type=Path, help="an image (PNG, JPEG or DICOM .dcm); repeatable")
    source.add_argument("--batch", type=Path, metavar="FILE.jsonl", help="one item a line")
    submit.add_argument("--media-type", help="override the media type guessed from the file")
    submit.add_argument("--external-id")
    submit.add_argument("--priority", choices=PRIORITIES)
    submit.add_argument("--explain", action="store_true", help="add an explanation to the result")
    submit.add_argument("--wait", action=argparse.BooleanOptionalAction, default=None,
                        help="wait for the result (default: yes for batches, no for one job)")
    submit.set_defaults(func=_command(_submit))


def _command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler: build the client, print its answer as JSON, turn failures into one line on stderr."""

    def run(args: argparse.Namespace) -> int:
        # The CLI's stderr is for its own one-line errors; httpx's per-request INFO lines are noise there.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            with MedqClient(_url(args), _key(args)) as client:
                answer = handler(client, args)
        except (MedqClientError, OSError, ValueError) as exc:
            print(f"medq: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0

    return run


def _url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("MEDQ_URL") or DEFAULT_URL)


def _key(args: argparse.Namespace) -> str:
    key = args.key or os.environ.get("MEDQ_API_KEY") or os.environ.get("MEDQ_DEMO_KEY")
    if not key and DEMO_KEY_FILE.is_file():
        key = DEMO_KEY_FILE.read_text().strip()
    if not key:
        raise ValueError("no API key: pass --key or set MEDQ_API_KEY (make run writes the demo key to var/demo.key)")
    return str(key)


def _submit(client: MedqClient, args: argparse.Namespace) -> Any:
    options: dict[str, Any] = {"priority": args.priority, "explain": args.explain}
    if args.batch is not None or (args.file and len(args.file) > 1):
        items = _batch_items(args)
        jobs = client.submit_batch(args.model, items, **options)
        if args.wait is False:
            return {"jobs": jobs}
        return {"jobs": _wait_with_progress(client, [job["id"] for job in jobs], args.timeout)}
    deadline = time.monotonic() + args.timeout
    prefer = min(int(args.timeout), MAX_PREFER_WAIT) if args.wait else None
    job = client.submit(args.model, text=args.text, file=args.file[0] if args.file else None,
                        media_type=args.media_type, external_id=args.external_id, wait=prefer, **options)
    if args.wait and job["status"] not in TERMINAL:
        job = client.wait(job["id"], timeout=max(deadline - time.monotonic(), 0.0))
    return job


def _batch_items(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.batch is None:
        return [{"file": path, "media_type": args.media_type, "external_id": args.external_id} for path in args.file]
    items: list[dict[str, Any]] = []
    for number, line in enumerate(args.batch.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.batch}:{number}: not JSON ({exc.msg})") from exc
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            raise ValueError(f"{args.batch}:{number}: expected an object like {{\"text\": ...}} or a string")
        if "file" in item:  # relative paths are relative to the JSONL file, not to the current directory
            item["file"] = args.batch.parent / item["file"]
        item.setdefault("external_id", args.external_id)  # --external-id is the default for every line
        items.append(item)
    return items


def _wait_with_progress(client: MedqClient, job_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    from tqdm import tqdm  # only batches need it

    with tqdm(total=len(job_ids), desc="jobs", unit="job", file=sys.stderr) as bar:
        return client.wait_many(job_ids, timeout=timeout, on_done=lambda _: bar.update(1))
