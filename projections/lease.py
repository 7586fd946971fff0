"""One writer per projection: a lease held for as long as a projector runs.

Two projectors feeding the same tables would interleave batches and break
the order the checkpoints assume, so a projector first takes a lease and
waits, as a standby, while another holds it. On PostgreSQL the lease is a
session advisory lock on the very connection the projector then writes
through: if that connection dies, the lock goes with it and so do the
projector's transactions, so two writers can never both believe they hold it.
On SQLite it is an exclusive ``flock`` on a file next to the database, which
the kernel releases when the process dies, even by ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)


class LeaseUnavailable(Exception):
    """Another process holds the lease and we were told not to wait."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a readable name."""
    digest = hashlib.blake2b(f"vigil-projection:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.asynccontextmanager
async def hold(
    conn: AsyncConnection,
    name: str,
    *,
    wait: bool = True,
    poll: float = 1.0,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[bool]:
    """Hold the lease ``name`` on ``conn`` for the block; yields False if ``stop`` came first."""
    lease: _PgLease | _FileLease = (
        _PgLease(conn, name) if conn.dialect.name == "postgresql" else _FileLease(conn, name)
    )
    waited = False
    while not await lease.acquire():
        if not wait:
            raise LeaseUnavailable(f"another process holds the {name} lease")
        if not waited:
            log.info("projection lease %s is held elsewhere; waiting as a standby", name)
            waited = True
        if stop is None:
            await asyncio.sleep(poll)  # polling another process's lock: nothing to await
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll)
        if stop.is_set():
            yield False
            return
    try:
        yield True
    finally:
        await lease.release()


class _PgLease:
    def __init__(self, conn: AsyncConnection, name: str) -> None:
        self._conn = conn
        self._key = lock_key(name)

    async def acquire(self) -> bool:
        query = sa.text("SELECT pg_try_advisory_lock(:k)")
        got = (await self._conn.execute(query, {"k": self._key})).scalar()
        await self._conn.commit()  # no transaction stays open while the session lock is held
        return bool(got)

    async def release(self) -> None:
        with contextlib.suppress(Exception):  # a dead connection has released it already
            await self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            await self._conn.commit()


class _FileLease:
    def __init__(self, conn: AsyncConnection, name: str) -> None:
        database = conn.engine.url.database
        in_memory = database in (None, "", ":memory:")
        # An in-memory database is private to this process: nothing to share.
        self._path = None if in_memory else Path(f"{database}.{name}.lock")
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._path is None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
