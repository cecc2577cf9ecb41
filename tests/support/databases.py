"""Throwaway PostgreSQL databases for tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.engine import make_url


def fresh_pg_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty database next to `base_url`; returns its URL and a function that drops it."""
    import psycopg

    url = make_url(base_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(hide_password=False), drop
