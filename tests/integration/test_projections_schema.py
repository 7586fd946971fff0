"""The migrations build exactly the tables ``projections.tables`` describes, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from infrastructure.database import create_engine
from projections import tables

pytestmark = pytest.mark.integration


async def test_migrated_schema_matches_the_table_definitions(db_engine: AsyncEngine) -> None:
    def diff(sync_conn: sa.Connection) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, tables.metadata))

    async with db_engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await migrations.current_revision(db_engine) == migrations.head_revision()


async def test_upgrading_twice_changes_nothing(db_engine: AsyncEngine) -> None:
    await migrations.upgrade_async(db_engine)

    assert await migrations.current_revision(db_engine) == migrations.head_revision()


def test_every_read_model_key_starts_with_the_tenant() -> None:
    for table in tables.READ_MODEL_TABLES:
        assert table.primary_key.columns.values()[0].name == "tenant_id", table.name


async def test_times_come_back_aware_and_equal(db_engine: AsyncEngine) -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    row = {
        "tenant_id": "acme",
        "aggregate_id": uuid4(),
        "version": 1,
        "aggregate_type": "device",
        "event_type": "Registered",
        "position": 1,
        "actor": "ops",
        "occurred_at": at,
        "payload": {"serial_number": "SN-1", "nested": [1, None, "x"]},
    }
    async with db_engine.begin() as conn:
        await conn.execute(tables.timeline.insert(), [row])
    async with db_engine.connect() as conn:
        stored = (await conn.execute(sa.select(tables.timeline))).mappings().one()

    assert stored["occurred_at"] == at
    assert stored["occurred_at"].tzinfo is not None
    assert stored["occurred_at"].astimezone(UTC).hour == 1
    assert stored["payload"] == row["payload"]


def test_sync_upgrade_migrates_a_fresh_sqlite_file(sqlite_url: str) -> None:
    migrations.upgrade(sqlite_url)
    migrations.upgrade(sqlite_url)  # and is idempotent

    engine = create_engine(sqlite_url)

    async def check() -> str | None:
        try:
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == migrations.head_revision()
