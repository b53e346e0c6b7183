"""Bearer-key authentication and scope checks. Every job query uses `principal().tenant_id`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from api.state import state
from shared.db import session_scope
from shared.errors import Forbidden, Unauthorized
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
    header = request.headers.get("Authorization", "")
    scheme, _, raw_key = header.partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    with session_scope(state().engine) as session:
        found = authenticate(session, raw_key=raw_key.strip())
    if found is None:
        raise Unauthorized("the API key is unknown, revoked or expired")
    return found
