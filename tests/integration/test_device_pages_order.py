"""Devices pages follow serial numbers in byte order, through the serial index, everywhere."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from infrastructure.database import create_engine
from projections.tables import devices
from read_api.pagination import PageRequest
from read_api.readers.devices import DeviceFilter, page_devices
from tests.support.graphql import device_row, insert

pytestmark = pytest.mark.integration

# Mixed case, punctuation and non-ASCII: where collations disagree.
SERIALS = ["b-2", "B-1", "_x", "a-10", "a-9", "Z", "é-1", "e-2", "A~"]


async def test_pages_order_serials_by_bytes_and_resume_from_their_cursor(
    db_engine: AsyncEngine,
) -> None:
    await insert(db_engine, devices, [device_row("acme", serial) for serial in SERIALS])

    seen: list[str] = []
    after = None
    async with db_engine.connect() as conn:
        while True:
            page = await page_devices(
                conn, "acme", DeviceFilter(), PageRequest(first=4, after=after), max_page_size=100
            )
            seen += [row.serial_number for row in page.rows]
            if not page.has_next:
                break
            after = page.cursors[-1]
        prefixed = await page_devices(
            conn, "acme", DeviceFilter(serial_prefix="a-"), PageRequest(), max_page_size=100
        )

    assert seen == sorted(SERIALS, key=lambda serial: serial.encode())
    assert [row.serial_number for row in prefixed.rows] == ["a-10", "a-9"]


async def test_postgresql_reads_pages_and_prefixes_through_the_serial_index(
    pg_engine: AsyncEngine,
) -> None:
    rows = [device_row("acme", f"{prefix}-{n:04}") for prefix in "AB" for n in range(2000)]
    await insert(pg_engine, devices, rows)
    async with pg_engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE devices")
    query = (
        sa.select(devices.c.serial_number)
        .where(devices.c.tenant_id == "acme")
        .order_by(devices.c.serial_number)
        .limit(101)
    )
    prefix = sa.select(devices.c.id).where(
        devices.c.tenant_id == "acme", devices.c.serial_number.startswith("A-00")
    )
    async with pg_engine.connect() as conn:
        # Make every alternative look ruinous: what remains is what the index can do.
        await conn.exec_driver_sql("SET enable_seqscan = off")
        await conn.exec_driver_sql("SET enable_sort = off")
        plans = []
        for statement in (query, prefix):
            compiled = statement.compile(
                pg_engine.sync_engine, compile_kwargs={"literal_binds": True}
            )
            result = await conn.exec_driver_sql(f"EXPLAIN {compiled}")
            plans.append("\n".join(row[0] for row in result))

    page_plan, prefix_plan = plans
    assert "ix_devices_tenant_id_serial_number" in page_plan and "Sort" not in page_plan, page_plan
    assert "ix_devices_tenant_id_serial_number" in prefix_plan, prefix_plan


async def test_the_collation_migration_keeps_existing_devices(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        await migrations.upgrade_async(engine, "0001")
        await insert(engine, devices, [device_row("acme", "OLD-1"), device_row("acme", "OLD-0")])
        await migrations.upgrade_async(engine)
        async with engine.connect() as conn:
            collation = await conn.scalar(
                sa.text(
                    "SELECT collation_name FROM information_schema.columns "
                    "WHERE table_name = 'devices' AND column_name = 'serial_number'"
                )
            )
            page = await page_devices(
                conn, "acme", DeviceFilter(), PageRequest(), max_page_size=100
            )
    finally:
        await engine.dispose()

    assert collation == "C"
    assert [row.serial_number for row in page.rows] == ["OLD-0", "OLD-1"]
