"""Alembic environment. The catalog runs migrations in-process (see `Catalog.open`) by handing its
connection over in `config.attributes["connection"]`; the `alembic` CLI works too via alembic.ini."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import photoindex.store.archive_models  # noqa: F401  (their tables, for autogenerate)
import photoindex.store.hash_models  # noqa: F401
from photoindex.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table copies for ALTER
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
