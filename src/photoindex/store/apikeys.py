"""API keys for `photoindex serve`: created with a secret shown once, stored as its SHA-256 only.

A secret is `pix_` followed by 32 random bytes (URL-safe base64), so a hash cannot be brute-forced
and needs no salt or slow KDF. Lookups are by hash (an index); the stored and computed digests are
then compared in constant time. `prefix` (the first 12 characters of the secret) names a key in
listings and for revoking without ever storing the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update

from photoindex.errors import CatalogError, ErrorCode
from photoindex.store.catalog import Catalog
from photoindex.store.models import ApiKey, utcnow

SECRET_PREFIX = "pix_"
PREFIX_LEN = 12
MAX_SECRET_LEN = 256
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most once a minute per key


class ApiKeyInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class ApiKeyStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, name: str) -> tuple[ApiKeyInfo, str]:
        """A new key; returns its record and the secret (which is not kept anywhere)."""
        name = name.strip()
        if not name or len(name) > 128:
            raise CatalogError("an API key needs a name of 1-128 characters", code=ErrorCode.INVALID_NAME)
        secret = new_secret()
        with self.catalog.session() as s:
            row = ApiKey(name=name, prefix=secret[:PREFIX_LEN], key_hash=hash_secret(secret), created_at=utcnow())
            s.add(row)
            s.flush()
            return ApiKeyInfo.model_validate(row), secret

    def list(self, *, include_revoked: bool = True) -> list[ApiKeyInfo]:
        with self.catalog.session() as s:
            q = select(ApiKey).order_by(ApiKey.id)
            if not include_revoked:
                q = q.where(ApiKey.revoked_at.is_(None))
            return [ApiKeyInfo.model_validate(r) for r in s.scalars(q)]

    def active_count(self) -> int:
        with self.catalog.session() as s:
            return int(s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))) or 0)

    def _find(self, ref: str | int) -> ApiKey:
        text = str(ref).strip()
        with self.catalog.session() as s:
            if text.isdigit():
                row = s.get(ApiKey, int(text))
                if row is not None:
                    return row
            rows = list(s.scalars(select(ApiKey).where(ApiKey.prefix.startswith(text, autoescape=True)).limit(2))) \
                if len(text) >= 4 else []
        if not rows:
            raise CatalogError(f"no API key {text!r}", code=ErrorCode.INVALID_REQUEST,
                               hint="give a key id or its prefix, as `photoindex apikey list` shows them")
        if len(rows) > 1:
            raise CatalogError(f"{text!r} matches several API keys", code=ErrorCode.INVALID_REQUEST,
                               hint="give more of the prefix, or the key id")
        return rows[0]

    def revoke(self, ref: str | int) -> ApiKeyInfo:
        """Revoke a key by id or prefix (idempotent: a revoked key stays revoked at its first time)."""
        row = self._find(ref)
        with self.catalog.session() as s:
            s.execute(update(ApiKey).where(ApiKey.id == row.id, ApiKey.revoked_at.is_(None))
                      .values(revoked_at=utcnow()))
            fresh = s.get(ApiKey, row.id)
            assert fresh is not None
            return ApiKeyInfo.model_validate(fresh)

    def verify(self, secret: str | None) -> ApiKeyInfo | None:
        """The key whose secret this is (revoked or not: callers check `active`), or None."""
        if not secret or len(secret) > MAX_SECRET_LEN:
            return None
        digest = hash_secret(secret)
        with self.catalog.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if row is None or not hmac.compare_digest(row.key_hash.encode(), digest.encode()):
                return None
            now = utcnow()
            if row.revoked_at is None and (row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY):
                row.last_used_at = now
            return ApiKeyInfo.model_validate(row)
