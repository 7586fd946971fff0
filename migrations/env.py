"""Alembic's environment: runs on the connection ``migrations.upgrade_async`` hands it."""

from __future__ import annotations

from alembic import context

from projections.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through migrations.upgrade(url) or `vigil migrate`, not the alembic CLI"
    )
if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # migrations.upgrade_async runs us inside its own transaction, and on SQLite
    # infrastructure.database makes that a real BEGIN: DDL is transactional on both.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
