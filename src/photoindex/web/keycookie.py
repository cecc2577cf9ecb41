"""The API key for the requests a browser makes on its own (an <img> thumbnail, a link to the
original, an EventSource job stream), which cannot carry the `x-api-key` header that the web UI's
fetch() calls send.

The UI keeps the key in localStorage and mirrors it into a `photoindex_key` cookie (SameSite=Strict,
path /api/v1/). This middleware copies that cookie into the `x-api-key` header, and only for GET/HEAD
on those few read-only routes; the usual check (`api.auth.require_key`: hash lookup, revocation) then
applies unchanged. Nothing that changes state is ever authorised by a cookie, so a cross-site form
cannot use it (and SameSite=Strict keeps other sites' requests from carrying it at all).
"""

from __future__ import annotations

import re

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from photoindex.api.auth import HEADER

COOKIE = "photoindex_key"
BROWSER_ROUTES = re.compile(r"^/api/v1/(?:assets/\d+/(?:thumbnail|original)|jobs/\d+/events)$")
_HEADER = HEADER.encode("latin-1")


def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            key = cookie_parser(value.decode("latin-1")).get(COOKIE)
            if key:
                return key
    return None


class KeyCookie:
    """Pure ASGI middleware (streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
                and BROWSER_ROUTES.match(scope["path"])):
            headers = list(scope["headers"])
            if not any(name == _HEADER for name, _ in headers):
                key = _cookie(headers)
                if key and key.isascii():
                    # in place: outer middleware (the access log) reads what the router adds to this scope
                    scope["headers"] = [*headers, (_HEADER, key.encode("ascii"))]
        await self.app(scope, receive, send)
