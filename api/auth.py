"""Bearer-key authentication and scope checks. Every job query uses `principal().tenant_id`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from api.state import state
from shared.db import session_scope
from shared.errors import Forbidden, TooManyRequests, Unauthorized
from shared.keys import Principal, authenticate

P = ParamSpec("P")
R = TypeVar("R")


def require_scope(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            found = _authenticate()
            if scope not in found.scopes and "admin" not in found.scopes:
                raise Forbidden(f"this key lacks the {scope!r} scope")
            g.principal = found
            return view(*args, **kwargs)

        return wrapper

    return decorator


def principal() -> Principal:
    found: Principal = g.principal
    return found


def _authenticate() -> Principal:
    st = state()
    client = f"authfail:{request.remote_addr or 'unknown'}"
    limit = st.settings.auth_failures_per_minute
    blocked = st.limiter.exceeded(client, limit=limit, window_s=60) if st.limiter else None
    if blocked is not None:
        raise TooManyRequests(f"more than {limit} failed authentications from this client in a minute",
                              retry_after=blocked)
    header = request.headers.get("Authorization", "")
    scheme, _, raw_key = header.partition(" ")
    found = None
    if scheme.lower() == "bearer" and raw_key.strip():
        with session_scope(st.engine) as session:
            found = authenticate(session, raw_key=raw_key.strip())
    if found is None:
        if st.limiter:
            st.limiter.hit(client, limit=limit, window_s=60)
        if not raw_key.strip():
            raise Unauthorized("send 'Authorization: Bearer <api key>'")
        raise Unauthorized("the API key is unknown, revoked or expired")
    return found
