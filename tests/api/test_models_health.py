from flask.testing import FlaskClient

from tests.conftest import RecordingEnqueuer


def test_models_list_and_get(client: FlaskClient, auth: dict[str, str]) -> None:
    models = client.get("/v1/models", headers=auth).get_json()["models"]
    assert [m["name"] for m in models] == ["disease-category", "pneumonia-xray"]
    one = client.get("/v1/models/pneumonia-xray", headers=auth).get_json()
    assert one["task"] == "image-classification" and len(one["sha256"]) == 64
    assert {"intended_use", "training_data", "metrics", "limitations"} <= one["card"].keys()
    assert client.get("/v1/models/nope", headers=auth).status_code == 404


def test_health_and_readiness(client: FlaskClient, enqueuer: RecordingEnqueuer) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": True, "broker": True}
    enqueuer.fail = True
    down = client.get("/readyz")
    assert down.status_code == 503 and down.headers["Retry-After"] and down.get_json()["checks"]["broker"] is False
