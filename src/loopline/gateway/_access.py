"""Who a request acts as: the API key it carries, checked against the gateway's keys.

The API takes the key as `Authorization: Bearer <key>` (or `X-API-Key`); the page keeps it in
an HttpOnly, SameSite=Strict cookie set by its sign-in form. A request that changes something
with the cookie must come from the gateway's own page (its Origin is the gateway's).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from loopline.gateway._core import Gateway
from loopline.gateway._keys import Principal

COOKIE = "loopline_key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _presented(request: Request) -> tuple[str | None, bool]:
    """The key the request carries, and whether it came in the page's cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"].strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def same_origin(request: Request) -> bool:
    """Whether a browser sent this request from the gateway's own pages."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return request.headers.get("sec-fetch-site") == "same-origin"
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def principal_of(request: Request) -> Principal | None:
    """The request's principal; None when it carries no key or a key that is not valid."""
    key, from_cookie = _presented(request)
    if key is None or len(key) > 200:
        return None
    found = await gateway_of(request).keys.verify(key)
    cross_site = from_cookie and request.method not in SAFE_METHODS and not same_origin(request)
    if found is not None and cross_site:
        raise HTTPException(403, "a change asked with the page's cookie from another site")
    return found


async def authenticated(request: Request) -> Principal:
    """The request's principal; 401 when it has none."""
    found = await principal_of(request)
    if found is None:
        key, _ = _presented(request)
        detail = "an API key is required" if key is None else "invalid or revoked API key"
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
    return found


async def operator(request: Request) -> Principal:
    """The request's principal if it is an operator; 403 for a user key."""
    found = await authenticated(request)
    if not found.is_operator:
        raise HTTPException(403, "operators only: this key's role is user")
    return found
