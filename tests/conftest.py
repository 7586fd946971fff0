"""Shared fixtures: a real nats-server per test session, isolated JetStream per test.

* ``nats_server``: URL of a nats-server with JetStream, spawned once per session
  on a free port with a temporary store directory.
* ``nats_client``: a client connected to it, closed after the test.
* ``jetstream_config``: a ``JetStreamConfig`` with a stream, subject prefix and
  snapshot bucket unique to the test, created before and deleted after it.
* ``jetstream_store``: a ``JetStreamEventStore`` on that stream.
* ``kv_snapshot_store``: a ``KeyValueSnapshotStore`` on that bucket.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream
from infrastructure.eventstore.snapshots_kv import KeyValueSnapshotStore
from infrastructure.natsd import NatsServer


@pytest.fixture(scope="session")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server = NatsServer(tmp_path_factory.mktemp("nats-server"))
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@pytest.fixture
async def nats_client(nats_server: str) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_server, name="vigil-tests", max_reconnect_attempts=2)
    try:
        yield nc
    finally:
        await nc.close()


def unique_jetstream_config() -> JetStreamConfig:
    """Names no other test uses, so tests can share one server and run in any order."""
    suffix = uuid.uuid4().hex[:12]
    return JetStreamConfig(
        stream=f"TEST_EVENTS_{suffix}",
        subject_prefix=f"test.{suffix}.evt",
        snapshot_bucket=f"TEST_SNAPSHOTS_{suffix}",
    )


@pytest.fixture
async def jetstream_config(nats_client: Client) -> AsyncIterator[JetStreamConfig]:
    js = nats_client.jetstream()
    config = unique_jetstream_config()
    await ensure_jetstream(js, config)
    try:
        yield config
    finally:
        with contextlib.suppress(nats.errors.Error):
            await js.delete_stream(config.stream)
        with contextlib.suppress(nats.errors.Error):
            await js.delete_key_value(config.snapshot_bucket)


@pytest.fixture
async def jetstream_store(
    nats_client: Client, jetstream_config: JetStreamConfig
) -> AsyncIterator[JetStreamEventStore]:
    store = JetStreamEventStore(nats_client, jetstream_config)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def kv_snapshot_store(
    nats_client: Client, jetstream_config: JetStreamConfig
) -> KeyValueSnapshotStore:
    return await KeyValueSnapshotStore.open(nats_client.jetstream(), jetstream_config)


# Read-model databases ------------------------------------------------------
#
# * ``pg_url``: SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test.
# * ``sqlite_url``: SQLAlchemy URL of a SQLite file in the test's tmp_path.
# * ``db_url``: parametrized over both, so one test runs on PostgreSQL and SQLite.
# * ``db_engine``: an engine on ``db_url`` with the migrations applied.
# * ``pg_engine``: the same on ``pg_url`` only.


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    from tests.support.databases import pg_database

    async with pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from tests.support.databases import sqlite_file_url

    return sqlite_file_url(tmp_path)


@pytest.fixture(params=["postgresql", "sqlite"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    from tests.support.databases import pg_database, sqlite_file_url

    if request.param == "sqlite":
        yield sqlite_file_url(tmp_path)
        return
    async with pg_database() as url:
        yield url


@contextlib.asynccontextmanager
async def migrated_engine(url: str) -> AsyncIterator[AsyncEngine]:
    import migrations
    from infrastructure.database import create_engine

    engine = create_engine(url)
    try:
        await migrations.upgrade_async(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def db_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(db_url) as engine:
        yield engine


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on a fresh PostgreSQL database (PostgreSQL-only behaviour)."""
    async with migrated_engine(pg_url) as engine:
        yield engine
