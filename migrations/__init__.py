"""Read-model schema migrations: alembic, configured in code (there is no alembic.ini).

``upgrade(url)`` is what ``vigil migrate`` runs; ``upgrade_async(engine)`` is
the same from inside a running event loop (``vigil up`` on start). Both take
a lock first on PostgreSQL, so processes starting together migrate one after
another instead of racing, and run every step in one transaction: a failed
upgrade leaves the schema as it was, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.database import create_engine, write_transaction

HEAD = "head"
# An arbitrary constant: the key of the advisory lock migrating processes share.
_MIGRATION_LOCK = 0x76696769_6C6D6967 & 0x7FFFFFFFFFFFFFFF


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration pointing at this package, optionally on an open connection."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = HEAD) -> None:
    """Bring the database at ``url`` to ``revision``; for callers without an event loop."""
    asyncio.run(_upgrade_url(url, revision))


async def upgrade_async(engine: AsyncEngine, revision: str = HEAD) -> None:
    """Bring ``engine``'s database to ``revision`` in one transaction."""
    async with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(_run, "upgrade", revision)


def head_revision() -> str:
    """The newest revision this package holds: where ``upgrade`` takes a database."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:

        def read(sync_conn: Connection) -> str | None:
            return MigrationContext.configure(sync_conn).get_current_revision()

        return await conn.run_sync(read)


async def _upgrade_url(url: str, revision: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade_async(engine, revision)
    finally:
        await engine.dispose()


def _run(connection: Connection, action: str, *args: Any) -> None:
    getattr(command, action)(alembic_config(connection), *args)
