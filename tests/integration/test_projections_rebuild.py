"""Rebuilding a projection from position 0 while its tables keep serving queries."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.repository import Repository
from projections import catalog, shadow, tables
from projections.rebuild import Rebuild
from projections.service import Projector
from projections.status import read_status
from tests.support.readmodels import dump
from tests.support.scenario import drive

pytestmark = pytest.mark.integration


class Reader:
    """Queries the devices and timeline tables in a loop, the way the read API would."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.answers = 0
        self.empty = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            async with self.engine.connect() as conn:
                for table in (tables.devices, tables.timeline, tables.fleet_device_counts):
                    count = (
                        await conn.execute(sa.select(sa.func.count()).select_from(table))
                    ).scalar()
                    self.empty += count == 0
                    self.answers += 1


async def test_rebuilds_swap_in_equal_tables_while_queries_keep_answering(
    db_engine: AsyncEngine,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    jetstream_store: JetStreamEventStore,
    tmp_path,
):
    repository = Repository(jetstream_store, build_mapper())
    await drive(repository, devices=60)
    live = Projector(db_engine, nats_server, jetstream_config, idle_timeout=0.2)
    await live.catch_up()
    stop = asyncio.Event()
    running = asyncio.create_task(live.run(stop))
    reader = Reader(db_engine)
    reading = asyncio.create_task(reader.run())
    progress: list[tuple[int, int]] = []

    # Events keep arriving while every projection is rebuilt in turn.
    writing = asyncio.create_task(drive(repository, tenant="globex", devices=30, seed=21))
    results = []
    for name in catalog.PROJECTIONS:
        rebuild = Rebuild(
            db_engine,
            nats_server,
            jetstream_config,
            name,
            batch_size=100,
            progress=lambda position, head: progress.append((position, head)),
        )
        results.append(await rebuild.run())
    await writing
    await drive(repository, tenant="hooli", devices=5, seed=22)
    live.caught_up.clear()
    await live.caught_up.wait()
    stop.set()
    await running
    reader.stop.set()
    await reading

    assert [r.name for r in results] == list(catalog.PROJECTIONS)
    assert reader.answers > 0 and reader.empty == 0
    assert progress and all(position <= head for position, head in progress)
    rebuilt = await dump(db_engine)
    assert rebuilt == await _scratch(tmp_path, nats_server, jetstream_config)
    statuses = await read_status(db_engine, None)
    assert {s.name for s in statuses} == set(catalog.PROJECTIONS)  # no shadow left behind
    assert all(s.generation == 1 for s in statuses)
    await _assert_no_shadow_tables(db_engine)


async def test_a_rebuild_starts_over_after_one_that_died(
    db_engine: AsyncEngine,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    jetstream_store: JetStreamEventStore,
    tmp_path,
):
    await drive(Repository(jetstream_store, build_mapper()), devices=20)
    await Projector(db_engine, nats_server, jetstream_config, idle_timeout=0.2).catch_up()
    # What a rebuild killed mid-way leaves: half-filled shadow tables and their checkpoint.
    shadows = shadow.shadow_tables(catalog.tables_of("devices"))
    async with db_engine.begin() as conn:
        await shadow.create(conn, shadows)
        await conn.execute(shadows["devices"].delete())

    result = await Rebuild(db_engine, nats_server, jetstream_config, "devices").run()

    assert result.position > 0
    assert await dump(db_engine) == await _scratch(tmp_path, nats_server, jetstream_config)
    await _assert_no_shadow_tables(db_engine)


async def test_rebuilding_an_unknown_projection_is_refused(
    db_engine: AsyncEngine, nats_server: str, jetstream_config: JetStreamConfig
):
    with pytest.raises(KeyError, match="unknown projection 'gadgets'"):
        Rebuild(db_engine, nats_server, jetstream_config, "gadgets")


async def _assert_no_shadow_tables(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        indexes = await conn.run_sync(
            lambda sync: [
                ix["name"]
                for t in tables.READ_MODEL_TABLES
                for ix in sa.inspect(sync).get_indexes(t.name)
            ]
        )
    assert not [name for name in names if name.endswith(shadow.SUFFIX)]
    assert not [name for name in indexes if shadow.SUFFIX in (name or "")]
    expected = {ix.name for t in tables.READ_MODEL_TABLES for ix in t.indexes}
    assert expected <= set(indexes)


async def _scratch(tmp_path, nats_server: str, config: JetStreamConfig) -> dict:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'scratch-{uuid4().hex}.db'}")
    try:
        await migrations.upgrade_async(engine)
        await Projector(
            engine, nats_server, config, durable=f"scratch-{uuid4().hex[:8]}", idle_timeout=0.2
        ).catch_up()
        return await dump(engine)
    finally:
        await engine.dispose()
