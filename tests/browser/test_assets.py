"""The clinician page's files as served by the app (no browser needed): headers, and the promises the page makes
that can be checked without running it — nothing from another origin, the key never in localStorage."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from api.page import STATIC


def test_page_is_served_at_the_root_with_a_strict_policy(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "form-action 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.get_data(as_text=True)
    assert 'src="/static/render.js"' in html and 'src="/static/app.js"' in html and 'href="/static/style.css"' in html
    assert html.index("/static/render.js") < html.index("/static/app.js")  # app.js uses what render.js defines
    assert "not a diagnosis" in html


def test_assets_are_served_under_static(client: FlaskClient) -> None:
    for name, mimetype in [("app.js", "text/javascript"), ("render.js", "text/javascript"), ("style.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.mimetype == mimetype
        assert response.get_data() == (STATIC / name).read_bytes()


def test_nothing_is_loaded_from_elsewhere_and_no_inline_code() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), f"{path.name} loads from another origin"
        assert "@import" not in text and "url(http" not in text
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script would break the CSP"
    assert not re.search(r"\son[a-z]+=", html), "inline event handlers would break the CSP"
    assert " style=" not in html


def test_the_key_lives_in_session_storage_only() -> None:
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    assert "sessionStorage" in script and "localStorage" not in script
    assert "document.cookie" not in script
