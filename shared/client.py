"""A typed Python client for the medq HTTP API v1 (../shared/contract/api-v1.md), and webhook verification.

    from shared.client import MedqClient
    with MedqClient("http://127.0.0.1:8000", key) as medq:
        job = medq.submit("disease-category", text="Chest pain radiating to the left arm", wait=10)
        job = medq.wait(job["id"])          # polls GET /v1/jobs/{id} until the job is terminal

Only httpx and standardwebhooks are imported (no torch, no Flask), so hospital integrators can vendor this file.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

__all__ = ["TERMINAL", "MedqApiError", "MedqClient", "MedqClientError", "MedqConnectionError", "MedqTimeout",
           "WebhookVerificationError", "guess_media_type", "verify_webhook"]

Json = dict[str, Any]
JobList = list[Json]
FileArg = str | os.PathLike[str] | bytes | IO[bytes]
TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".dcm": "application/dicom",
              ".dicom": "application/dicom"}
RETRY_STATUSES = frozenset({429, 503})
MAX_BATCH = 256  # the contract's per-request limit; longer batches are sent in chunks of this size


class MedqClientError(Exception):
    """Anything the client raises on purpose: an API problem, an unreachable server, a wait that ran out."""


class MedqApiError(MedqClientError):
    """An error answer from the API, carrying its RFC 9457 problem+json fields."""

    def __init__(self, status: int, *, type: str = "about:blank", title: str = "", detail: str = "",
                 errors: list[Json] | None = None, retry_after: float | None = None, body: Json | None = None):
        self.status = status
        self.type = type
        self.title = title or f"HTTP {status}"
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        self.body = body or {}
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.title}" + (f": {self.detail}" if self.detail else "")
        fields = "; ".join(f"{e.get('field') or '(body)'}: {e.get('message', '')}" for e in self.errors)
        return f"{text} ({fields})" if fields else text

    @classmethod
    def from_response(cls, response: httpx.Response) -> MedqApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Not a problem document (a proxy's HTML page, say): keep a short excerpt as the detail.
            return cls(response.status_code, title=response.reason_phrase, detail=response.text[:200].strip(),
                       retry_after=_retry_after(response))
        return cls(response.status_code, type=str(body.get("type", "about:blank")), title=str(body.get("title", "")),
                   detail=str(body.get("detail", "")), errors=list(body.get("errors") or []),
                   retry_after=_retry_after(response), body=body)


class MedqConnectionError(MedqClientError):
    """The server could not be reached (after the retries)."""


class MedqTimeout(MedqClientError, TimeoutError):
    """`wait` ran out of time; `job` is the last state seen."""

    def __init__(self, message: str, job: Json | None = None):
        super().__init__(message)
        self.job = job


class MedqClient:
    """One reusable httpx.Client (building one is CPU-expensive: TLS context, pools); close it, or use `with`.

    503 and 429 answers are retried `retries` times, sleeping for their Retry-After (capped at `max_retry_wait`),
    as are connection failures. Every POST carries an Idempotency-Key, so a retried submit never makes a second job.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0, retries: int = 3,
                 max_retry_wait: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {api_key}", "User-Agent": "medq-client/1"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MedqClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, model: str, *, text: str | None = None, file: FileArg | None = None,
               media_type: str | None = None, external_id: str | None = None, priority: str | None = None,
               explain: bool = False, webhook: Mapping[str, Any] | None = None, wait: int | None = None,
               idempotency_key: str | None = None, max_queue_seconds: int | None = None) -> Json:
        """One job. A text goes as JSON, a file as multipart (no base64 overhead against the body limit).
        `wait` (seconds, ≤ 60) asks the server to hold the answer until the job is done (`Prefer: wait`)."""
        if (text is None) == (file is None):
            raise ValueError("give exactly one of text= or file=")
        fields = _fields(external_id=external_id, priority=priority, explain=explain or None,
                         webhook=webhook, max_queue_seconds=max_queue_seconds)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        if wait:
            headers["Prefer"] = f"wait={int(wait)}"
        timeout = self.timeout + (wait or 0)  # the server may hold the answer for `wait` seconds
        if text is not None:
            body: Json = {"model": model, "input": {"text": text}, **fields}
            return _as_dict(self._request("POST", "/v1/jobs", json=body, headers=headers, timeout=timeout))
        data, name = _read(file)
        kind = media_type or guess_media_type(data, name)
        form = {"model": model, "media_type": kind,
                **{k: _form_value(v) for k, v in fields.items()}}
        return _as_dict(self._request("POST", "/v1/jobs", data=form, files={"file": (name or "upload", data, kind)},
                                      headers=headers, timeout=timeout))

    def submit_batch(self, model: str, items: Iterable[Mapping[str, Any]], *, priority: str | None = None,
                     explain: bool = False, webhook: Mapping[str, Any] | None = None,
                     idempotency_key: str | None = None, max_queue_seconds: int | None = None) -> JobList:
        """Many jobs, in item order. An item is `{"text": ...}`, `{"file": path|bytes, "media_type": ...}` or an
        API item `{"input": {...}}`, each with an optional `external_id`. Sent in chunks of 256 (the API's limit)."""
        api_items = [_batch_item(item) for item in items]
        if not api_items:
            raise ValueError("a batch needs at least one item")
        fields = _fields(priority=priority, explain=explain or None, webhook=webhook,
                         max_queue_seconds=max_queue_seconds)
        key = idempotency_key or str(uuid.uuid4())
        jobs: JobList = []
        for start in range(0, len(api_items), MAX_BATCH):
            body = {"model": model, "items": api_items[start:start + MAX_BATCH], **fields}
            headers = {"Idempotency-Key": key if start == 0 else f"{key}.{start // MAX_BATCH}"}
            jobs.extend(_as_dict(self._request("POST", "/v1/jobs/batch", json=body, headers=headers))["jobs"])
        return jobs

    def get(self, job_id: str, *, wait: float = 0) -> Json:
        """The job; with `wait` > 0 the server holds the answer until it is terminal or `wait` s (≤ 60) pass."""
        seconds = min(int(wait), 60) if wait >= 1 else 0
        headers = {"Prefer": f"wait={seconds}"} if seconds else {}
        return _as_dict(self._request("GET", f"/v1/jobs/{job_id}", headers=headers, timeout=self.timeout + seconds))

    def list(self, *, status: str | None = None, model: str | None = None, external_id: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> Json:
        """One page, newest first: `{"jobs": [...], "next_cursor": ... | None}`."""
        params = _fields(status=status, model=model, external_id=external_id, limit=limit, cursor=cursor)
        return _as_dict(self._request("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> Json:
        return _as_dict(self._request("POST", f"/v1/jobs/{job_id}/cancel"))

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def models(self) -> JobList:
        return list(_as_dict(self._request("GET", "/v1/models"))["models"])

    def wait(self, job_id: str, *, timeout: float = 300.0, interval: float = 0.25, max_interval: float = 5.0) -> Json:
        """Long-poll GET /v1/jobs/{id} (`Prefer: wait`) until the job is terminal; pauses growing from `interval`
        to `max_interval` between rounds that end unfinished. Raises MedqTimeout after `timeout` seconds."""
        return self.wait_many([job_id], timeout=timeout, interval=interval, max_interval=max_interval)[0]

    def wait_many(self, job_ids: Sequence[str], *, timeout: float = 300.0, interval: float = 0.25,
                  max_interval: float = 5.0, on_done: Callable[[Json], None] | None = None) -> JobList:
        """Like `wait` for several jobs, in the given order; `on_done(job)` is called as each one finishes."""
        deadline = time.monotonic() + timeout
        done: dict[str, Json] = {}
        pause = interval
        while True:
            for job_id in [j for j in job_ids if j not in done]:
                # The server wakes the request when the job finishes: no polling traffic while it runs.
                job = self.get(job_id, wait=deadline - time.monotonic())
                if job["status"] in TERMINAL:
                    done[job_id] = job
                    if on_done is not None:
                        on_done(job)
            if len(done) == len(set(job_ids)):
                return [done[j] for j in job_ids]
            if time.monotonic() + pause > deadline:
                pending = [j for j in job_ids if j not in done]
                raise MedqTimeout(f"{len(pending)} job(s) not finished after {timeout:g}s: {', '.join(pending[:5])}",
                                  job=self.get(pending[0]) if len(pending) == 1 else None)
            time.sleep(pause)
            pause = min(pause * 1.5, max_interval)

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send, retrying 429/503 (after Retry-After) and connection failures; the parsed JSON, or None for 204.
        A POST without an Idempotency-Key (cancel) is resent only if it never left: it may have taken effect."""
        resendable = method != "POST" or "Idempotency-Key" in kwargs.get("headers", {})
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if last or not (resendable or isinstance(exc, httpx.ConnectError)):
                    raise MedqConnectionError(f"cannot reach {self._http.base_url}: {exc or type(exc).__name__}") \
                        from exc
                time.sleep(min(0.5 * 2 ** attempt, self.max_retry_wait))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                delay = _retry_after(response)
                time.sleep(min(1.0 if delay is None else delay, self.max_retry_wait))
                continue
            if response.is_error:
                raise MedqApiError.from_response(response)
            return None if response.status_code == 204 or not response.content else response.json()
        raise AssertionError("unreachable")  # the last attempt always returns or raises


def verify_webhook(secret_or_secrets: str | Sequence[str], body: bytes | str,
                   headers: Mapping[str, str]) -> Json:
    """The parsed event of a medq webhook, once its Standard Webhooks signature checks out against one of the
    secrets (pass the current and the previous one during a rotation). Raises WebhookVerificationError."""
    secrets = [secret_or_secrets] if isinstance(secret_or_secrets, str) else list(secret_or_secrets)
    secrets = [s for s in secrets if s]
    if not secrets:
        raise ValueError("no webhook secret given")
    plain = dict(headers.items())
    for secret in secrets:
        try:
            payload = Webhook(secret).verify(body, plain)
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed signature header
            continue
        return _as_dict(payload)
    raise WebhookVerificationError("the signature matches none of the secrets, or the timestamp is stale")


def guess_media_type(data: bytes, name: str | None = None) -> str:
    """image/png, image/jpeg or application/dicom, from the bytes' magic numbers, else from the file extension."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[128:132] == b"DICM":  # the DICOM Part 10 preamble; files without it are named .dcm
        return "application/dicom"
    suffix = Path(name).suffix.lower() if name else ""
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise ValueError(f"cannot tell the media type of {name or 'the data'}: not PNG, JPEG or DICOM; pass media_type")


def _form_value(value: Any) -> str:
    """A form field as the API reads it: strings as they are; booleans (true/false), numbers, objects as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _fields(**values: Any) -> Json:
    return {k: v for k, v in values.items() if v is not None}


def _read(file: FileArg | None) -> tuple[bytes, str | None]:
    if isinstance(file, bytes):
        return file, None
    if isinstance(file, str | os.PathLike):
        path = Path(file)
        return path.read_bytes(), path.name
    if file is None:
        raise ValueError("no file")
    name = getattr(file, "name", None)
    return file.read(), Path(name).name if isinstance(name, str) else None


def _batch_item(item: Mapping[str, Any]) -> Json:
    out = _fields(external_id=item.get("external_id"))
    if "input" in item:
        return {"input": dict(item["input"]), **out}
    if item.get("text") is not None:
        return {"input": {"text": item["text"]}, **out}
    if item.get("file") is not None:
        data, name = _read(item["file"])
        kind = item.get("media_type") or guess_media_type(data, name)
        return {"input": {"image_b64": base64.b64encode(data).decode(), "media_type": kind}, **out}
    raise ValueError(f"a batch item needs text, file or input: {sorted(item)}")


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    if raw.strip().isdigit():
        return float(raw.strip())
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _as_dict(value: Any) -> Json:
    if not isinstance(value, dict):
        raise MedqClientError(f"expected a JSON object from the API, got {type(value).__name__}")
    return value
