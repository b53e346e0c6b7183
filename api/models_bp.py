"""/v1/models: what the model directories declare (read from model.json; no weights are loaded here)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.auth import require_scope
from api.openapi import MODELS, documented
from api.state import state
from shared.errors import NotFound
from shared.schemas import ModelList, ModelOut

bp = Blueprint("models", __name__, url_prefix="/v1/models")


@bp.get("")
@documented("listModels", tag=MODELS, ok={200: (ModelList, "Every model, by name.")})
@require_scope("jobs:read")
def list_models() -> Response:
    """List the models.

    Name, version, task, labels, weights sha256, limits, model card, calibration and abstain band, as each
    model's `model.json` declares them. Scope `jobs:read`."""
    specs = state().specs
    out = ModelList(models=[specs[name].to_public() for name in sorted(specs)])
    return jsonify(out.model_dump(mode="json"))


@bp.get("/<name>")
@documented("getModel", tag=MODELS, ok={200: (ModelOut, "The model.")}, errors=((404, "No model of that name."),))
@require_scope("jobs:read")
def get_model(name: str) -> Response:
    """Get one model and its card. Scope `jobs:read`."""
    spec = state().specs.get(name)
    if spec is None:
        raise NotFound(f"no model {name!r}")
    return jsonify(spec.to_public().model_dump(mode="json"))
