"""/v1/models: what the model directories declare (read from model.json; no weights are loaded here)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.auth import require_scope
from api.state import state
from shared.errors import NotFound
from shared.schemas import ModelList

bp = Blueprint("models", __name__, url_prefix="/v1/models")


@bp.get("")
@require_scope("jobs:read")
def list_models() -> Response:
    specs = state().specs
    out = ModelList(models=[specs[name].to_public() for name in sorted(specs)])
    return jsonify(out.model_dump(mode="json"))


@bp.get("/<name>")
@require_scope("jobs:read")
def get_model(name: str) -> Response:
    spec = state().specs.get(name)
    if spec is None:
        raise NotFound(f"no model {name!r}")
    return jsonify(spec.to_public().model_dump(mode="json"))
