"""The clinician page at `/`: plain HTML, CSS and JS from `api/static/` (no build step, no CDN, works offline).

The assets are served at `/static/...` by Flask's own static route: `api/static` is the app's static folder
because the app is created with the `api` package's import name. The page itself holds no data and needs no
login; it calls `/v1/*` from the browser with the API key the user types (kept in sessionStorage only).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"

# Only this origin's script, style and API; images also from blob: (the uploaded X-ray) and data: (the heatmap).
# No inline script or style, no framing, and no native form submission that could put a note in a URL.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")

bp = Blueprint("page", __name__)


@bp.get("/")
def index() -> Response:
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"  # a redeployed page is picked up at once
    return response
