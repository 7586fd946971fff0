"""Throwaway read-model databases for tests: a fresh PostgreSQL database or SQLite file.

PostgreSQL databases are named ``vigil_test_<random>`` so that tests never
collide and a leftover is easy to spot; they are dropped ``WITH (FORCE)`` so a
connection a test leaked cannot keep one alive.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

# The admin connection used to create and drop test databases.
PG_ADMIN_DSN = os.environ.get("VIGIL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DATABASE_PREFIX = "vigil_test_"


def _asyncpg_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


async def create_pg_database() -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy URL)."""
    name = f"{TEST_DATABASE_PREFIX}{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, _asyncpg_url(PG_ADMIN_DSN, name)


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def pg_databases() -> set[str]:
    """Names of the test databases that exist right now (to check for leaks)."""
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            TEST_DATABASE_PREFIX + "%",
        )
    finally:
        await conn.close()
    return {row["datname"] for row in rows}


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for the block; yields its SQLAlchemy URL."""
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


def sqlite_file_url(directory: Path, name: str = "readmodels.db") -> str:
    return f"sqlite+aiosqlite:///{directory / name}"
