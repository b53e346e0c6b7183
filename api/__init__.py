"""The medq HTTP API: a Flask app factory. Never imports torch."""

from __future__ import annotations

from flask import Flask

from api import audit, fhir_bp, health, jobs, metrics, models_bp, openapi, page, problems, webhooks_bp
from api.enqueue import CeleryEnqueuer
from api.state import ApiState, Enqueuer
from shared import crypto, logs
from shared.bootstrap import ensure_demo_key
from shared.db import init_db, make_engine
from shared.notify import Waiter
from shared.ratelimit import RateLimiter
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, enqueuer: Enqueuer | None = None) -> Flask:
    """Build the app. Tests pass their own settings (and may pass an enqueuer); gunicorn calls it bare."""
    settings = settings or get_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    crypto.install_from(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    engine = make_engine(settings.database_url)
    init_db(engine)
    if settings.demo_key:
        ensure_demo_key(engine, settings.demo_key)
    st = ApiState(settings=settings, engine=engine, enqueuer=enqueuer or CeleryEnqueuer(settings),
                  waiter=Waiter(settings.redis_url), limiter=RateLimiter(settings.redis_url))
    st.reload_specs()
    app.extensions["medq"] = st
    problems.register(app)
    audit.register(app)
    metrics.register(app)
    for blueprint in (health.bp, jobs.bp, models_bp.bp, webhooks_bp.bp, fhir_bp.bp, page.bp, openapi.bp):
        app.register_blueprint(blueprint)
    return app
