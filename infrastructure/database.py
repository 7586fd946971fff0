"""The read-model database: one async engine factory for PostgreSQL and SQLite.

PostgreSQL goes through asyncpg, SQLite through aiosqlite; everything above
this module is the same SQLAlchemy Core code for both. Unset
``VIGIL_DATABASE_URL`` means the embedded SQLite file ``<data_dir>/readmodels.db``.

SQLite is set up for one writer and many readers: WAL (readers never block
the writer nor each other), a busy timeout instead of instant "database is
locked" errors, and ``synchronous=NORMAL`` (durable at every checkpoint of the
WAL; a power cut can lose the last transactions, which the projector replays
from its checkpoint anyway). pysqlite's own transaction handling is switched
off so that SQLAlchemy's ``begin()`` really emits ``BEGIN`` (DDL then runs
inside transactions, which the rebuild swap relies on); a connection that will
write can ask for ``BEGIN IMMEDIATE`` with ``write_options`` so it takes the
write lock up front instead of failing to upgrade a read lock later.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from vigil.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "vigil_sqlite_begin"


def database_url(settings: Settings) -> str:
    """``VIGIL_DATABASE_URL``, or the embedded SQLite file under the data directory."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite+aiosqlite:///{settings.data_dir / 'readmodels.db'}"


def json_dumps(value: Any) -> str:
    """JSON text for a JSON column, the same on every database and write path.

    orjson writes UUIDs and datetimes (RFC 3339) natively; the rest of what
    events may carry (Decimal, bytes) is written as text.
    """
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)  # Decimal and anything else with a faithful text form


DEFAULT_POOL_SIZE = 20


def create_engine(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, echo: bool = False
) -> AsyncEngine:
    """An async engine for ``url`` (``postgresql+asyncpg://`` or ``sqlite+aiosqlite://``).

    On PostgreSQL ``pool_size`` connections are kept open once used, plus up
    to half as many again under bursts. Those extra ones are closed when
    they are handed back, so the pool should cover the usual concurrency: a
    new connection costs a TLS probe, authentication and start-up, several
    times a GraphQL read, and churning them once made up a third of the API's
    CPU under 16 concurrent clients.

    The caller owns it and disposes of it (``await engine.dispose()``).
    """
    parsed = make_url(url)
    options: dict[str, Any] = {
        "echo": echo,
        "json_serializer": json_dumps,
        "json_deserializer": orjson.loads,
    }
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise ValueError(f"PostgreSQL URLs must use asyncpg: postgresql+asyncpg://, not {url}")
        return create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max(1, pool_size // 2),
            # No pre-ping: with asyncpg it costs BEGIN, a query and ROLLBACK before every
            # checkout, about a quarter of a GraphQL read. A connection lost to a server
            # restart fails one request; SQLAlchemy then sees the disconnect and
            # invalidates the whole pool, and the projector retries its batch.
            pool_pre_ping=False,
            connect_args={"server_settings": {"application_name": "vigil"}},
            **options,
        )
    if parsed.get_backend_name() == "sqlite":
        if parsed.get_driver_name() != "aiosqlite":
            raise ValueError(f"SQLite URLs must use aiosqlite: sqlite+aiosqlite://, not {url}")
        in_memory = parsed.database in (None, "", ":memory:")
        if in_memory:
            options["poolclass"] = StaticPool  # one shared connection, or each sees its own DB
        engine = create_async_engine(url, **options)
        _configure_sqlite(engine, wal=not in_memory)
        return engine
    raise ValueError(f"unsupported database URL {url}: use postgresql+asyncpg or sqlite+aiosqlite")


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


def write_options(engine: AsyncEngine | AsyncConnection) -> dict[str, Any]:
    """Execution options for a connection that is about to write (``BEGIN IMMEDIATE`` on SQLite)."""
    return {_BEGIN_OPTION: "IMMEDIATE"} if is_sqlite(engine) else {}


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: committed on success, rolled back on error."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**write_options(engine))
        async with conn.begin():
            yield conn


def _configure_sqlite(engine: AsyncEngine, *, wal: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
