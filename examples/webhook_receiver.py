"""A reference receiver for medq webhooks, for hospital integrators (Flask + the `standardwebhooks` package).

    pip install flask standardwebhooks
    MEDQ_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py   # listens on 127.0.0.1:9000

What it shows:
- verify the signature over the raw body before trusting anything (and reject stale timestamps: the package
  allows 5 minutes of clock skew);
- answer 2xx quickly and do the real work afterwards (medq retries anything else, for up to about a day);
- de-duplicate on `webhook-id`: medq delivers at least once, so a retry or a redelivery can repeat an event;
  the id is the same every time, so remember the ids already handled (here in SQLite, so it survives restarts).
During a secret rotation medq signs with both secrets; keep the old one in MEDQ_WEBHOOK_PREVIOUS_SECRET until the
grace period ends (`previous_valid_until`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from flask import Flask, Response, request
from standardwebhooks import Webhook, WebhookVerificationError


def create_app(secrets: list[str], db_path: str = "received-webhooks.db") -> Flask:
    app = Flask(__name__)
    verifiers = [Webhook(s) for s in secrets if s]
    db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS seen (webhook_id TEXT PRIMARY KEY, type TEXT, job_id TEXT, body TEXT)")

    @app.post("/medq/webhook")
    def receive() -> Response:
        raw = request.get_data()
        payload = _verified(verifiers, raw, dict(request.headers))
        if payload is None:
            return Response("bad signature", status=401)
        webhook_id = request.headers["webhook-id"]
        try:  # the primary key makes "seen before?" and "remember it" one atomic step
            db.execute("INSERT INTO seen VALUES (?, ?, ?, ?)",
                       (webhook_id, payload["type"], payload["data"]["id"], raw.decode()))
        except sqlite3.IntegrityError:
            return Response("duplicate, already handled", status=200)
        handle(payload)
        return Response(status=204)

    app.extensions["seen_db"] = db
    return app


def _verified(verifiers: list[Webhook], raw: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
    for verifier in verifiers:
        try:
            payload: dict[str, Any] = verifier.verify(raw, headers)
            return payload
        except WebhookVerificationError:
            continue
    return None


def handle(payload: dict[str, Any]) -> None:
    """Your integration goes here (file the result in the EHR, page the radiologist for a stat job, …)."""
    job = payload["data"]
    result = job.get("result") or {}
    print(json.dumps({"event": payload["type"], "job": job["id"], "external_id": job.get("external_id"),
                      "label": result.get("label"), "indeterminate": result.get("indeterminate", False)}))


if __name__ == "__main__":
    current = os.environ["MEDQ_WEBHOOK_SECRET"]
    previous = os.environ.get("MEDQ_WEBHOOK_PREVIOUS_SECRET", "")
    create_app([current, previous]).run(host="127.0.0.1", port=int(os.environ.get("PORT", "9000")))
