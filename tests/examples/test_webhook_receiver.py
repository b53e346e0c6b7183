"""The reference receiver accepts medq's signatures, refuses tampered bodies and handles each webhook-id once."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from examples import webhook_receiver
from shared.webhook_secrets import generate_secret
from worker.webhooks import sign

BODY = '{"type":"job.succeeded","timestamp":"2026-11-25T10:00:00Z","data":{"id":"j1","result":{"label":"normal"}}}'


def test_verifies_and_deduplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[str] = []
    monkeypatch.setattr(webhook_receiver, "handle", lambda payload: handled.append(payload["data"]["id"]))
    old, new = generate_secret(), generate_secret()
    client = webhook_receiver.create_app([new, old], str(tmp_path / "seen.db")).test_client()
    headers = sign("msg_1", datetime.now(UTC), BODY, [old])  # still signed with the previous secret
    assert client.post("/medq/webhook", data=BODY, headers=headers).status_code == 204
    assert client.post("/medq/webhook", data=BODY, headers=headers).status_code == 200  # a retry: not again
    tampered = BODY.replace("normal", "pneumonia")
    assert client.post("/medq/webhook", data=tampered, headers=headers).status_code == 401
    stranger = sign("msg_2", datetime.now(UTC), BODY, [generate_secret()])
    assert client.post("/medq/webhook", data=BODY, headers=stranger).status_code == 401
    assert handled == ["j1"]
