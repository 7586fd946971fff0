"""The PostgreSQL pool keeps the connections a steady load needs, instead of churning them."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from infrastructure.database import create_engine


async def test_sixteen_concurrent_readers_reuse_their_connections(pg_url: str) -> None:
    engine = create_engine(pg_url)
    opened: list[Any] = []
    event.listen(engine.sync_engine, "connect", lambda dbapi, record: opened.append(dbapi))
    barrier = asyncio.Barrier(16)

    async def read() -> None:
        async with engine.connect() as conn:
            await barrier.wait()  # all 16 hold a connection at once
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1

    try:
        for _ in range(5):
            await asyncio.gather(*(read() for _ in range(16)))
        assert len(opened) == 16, f"{len(opened)} connections opened for 5 rounds of 16 readers"
    finally:
        await engine.dispose()


async def test_a_burst_beyond_the_pool_is_served_then_given_back(pg_url: str) -> None:
    engine = create_engine(pg_url, pool_size=2)
    barrier = asyncio.Barrier(3)

    async def read() -> int:
        async with engine.connect() as conn:
            await barrier.wait()  # three at once: one more than the pool keeps
            return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())

    try:
        assert await asyncio.gather(*(read() for _ in range(3))) == [1, 1, 1]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert engine.pool.size() == 2  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
