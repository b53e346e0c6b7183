"""Encryption at rest: AES-GCM round trips, tampering and column swaps fail, keys rotate, production refuses the
development key, and the database file holds no clear text."""

from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from shared import crud, crypto
from shared.db import init_db, make_engine, session_scope
from shared.keys import ensure_tenant
from shared.models import Job
from shared.status import Priority
from shared.worker_store import claim_jobs, store_results

NOTE = "Patient Quixotl Marbleworth, 71, reports haemoptysis and weight loss."


def _ring(*ids: str, current: str) -> crypto.Keyring:
    return crypto.Keyring.parse(",".join(f"{i}:{crypto.new_key()}" for i in ids), current)


def test_round_trip_and_tampering() -> None:
    ring = _ring("k1", current="k1")
    sealed = ring.encrypt(NOTE.encode(), "job.input_data")
    assert sealed.startswith("mq1:k1:") and "Quixotl" not in sealed
    assert ring.decrypt(sealed, "job.input_data") == NOTE.encode()
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(crypto.KeyringError, match="failed authentication"):
        ring.decrypt(flipped, "job.input_data")
    with pytest.raises(crypto.KeyringError):  # copied into another column: the associated data differs
        ring.decrypt(sealed, "job.result")


def test_rotation_keeps_old_rows_readable_and_unknown_keys_fail() -> None:
    old = _ring("k1", current="k1")
    sealed = old.encrypt(b"x", "c")
    both = crypto.Keyring({**old.keys, "k2": bytes(32)}, "k2")
    assert both.decrypt(sealed, "c") == b"x" and both.encrypt(b"y", "c").startswith("mq1:k2:")
    with pytest.raises(crypto.KeyringError, match="unknown"):
        _ring("k3", current="k3").decrypt(sealed, "c")


@pytest.mark.parametrize(("spec", "current"), [("k1:bm90LTMyLWJ5dGVz", "k1"), ("k1:%%%", "k1"), ("", "k1")])
def test_bad_key_configuration_is_refused(spec: str, current: str) -> None:
    with pytest.raises(crypto.KeyringError):
        crypto.Keyring.parse(spec, current)


def test_production_refuses_the_development_key() -> None:
    with pytest.raises(crypto.KeyringError, match="production"):
        crypto.install(crypto.keyring_from("", "dev"), production=True)
    crypto.install(crypto.keyring_from("", "dev"), production=False)


def test_the_database_file_holds_no_clear_text(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'medq.db'}")
    init_db(engine)
    with session_scope(engine) as s:
        tenant = ensure_tenant(s, name="a").id
        (job,) = crud.create_jobs(s, tenant_id=tenant, model="m", model_version="1", explain=True,
                                  items=[crud.NewJob(input_kind="text", input_data=NOTE.encode(),
                                                     subject={"reference": "Patient/quixotl-77"})],
                                  priority=Priority.ROUTINE, max_queue_seconds=None)
    explanation = {"tokens": [{"token": "quixotl", "weight": 1.0}]}
    with session_scope(engine) as s:
        claim_jobs(s, job_ids=[job.id], max_attempts=3)
        store_results(s, results={job.id: {"label": "neoplasms", "explanation": explanation}}, failures={})
    with session_scope(engine) as s:  # the application reads clear text back
        stored = s.get(Job, job.id)
        assert stored is not None and stored.input_data == NOTE.encode()
        assert stored.result == {"label": "neoplasms", "explanation": explanation}
        assert stored.subject == {"reference": "Patient/quixotl-77"}
        raw_input = s.execute(text("SELECT input_data FROM job")).scalar_one()
        s.exec(update(Job).where(col(Job.id) == job.id).values(status="succeeded"))
    engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("medq.db*"))  # the file and its WAL
    assert str(raw_input).startswith("mq1:") and b"mq1:dev:" in raw  # encrypted rows are really there
    assert b"Quixotl" not in raw and b"quixotl" not in raw and b"haemoptysis" not in raw
