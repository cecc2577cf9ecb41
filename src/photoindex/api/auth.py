"""API keys on the `x-api-key` header.

Keys are required whenever the server listens on a non-loopback address (`require_api_key` unset),
or always / never when `require_api_key` says so. When they are required, every route but
`/healthz` needs a valid, unrevoked key; keys are checked against their stored SHA-256
(`store.apikeys`), so the server never holds a secret.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from photoindex.api.errors import UNAUTHORIZED, ApiError
from photoindex.config import Settings
from photoindex.store.apikeys import ApiKeyStore

HEADER = "x-api-key"
api_key_header = APIKeyHeader(name=HEADER, auto_error=False, scheme_name="ApiKey",
                              description="A key from `photoindex apikey create NAME`.")
_CHALLENGE = {"WWW-Authenticate": f'ApiKey header="{HEADER}"'}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost are loopback; everything else (0.0.0.0, ::, a LAN address, a
    host name) can be reached from other machines."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def keys_required(settings: Settings, host: str | None = None) -> bool:
    if settings.require_api_key is not None:
        return settings.require_api_key
    return not is_loopback(host if host is not None else settings.api_host)


def require_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    """Dependency of every protected route (only added when keys are required)."""
    if not key:
        raise ApiError(401, UNAUTHORIZED, f"this server requires an API key in the {HEADER} header",
                       hint="create one with `photoindex apikey create NAME` on the server", headers=_CHALLENGE)
    rt = request.app.state.rt
    info = ApiKeyStore(rt.catalog).verify(key)
    if info is None:
        raise ApiError(401, UNAUTHORIZED, "unknown API key", headers=_CHALLENGE)
    if not info.active:
        raise ApiError(401, UNAUTHORIZED, f"API key {info.prefix}… was revoked", headers=_CHALLENGE)
    request.scope["photoindex.api_key"] = info.prefix
