"""Change notices over real Redis: the bus contract, and fan-out to several API processes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

import migrations
from infrastructure.changes import ChangeBus, ChangeNotice, LocalChangeBus
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.memory import InMemoryEventStore
from projections.tables import devices
from read_api.subscriptions import build_hub
from read_api.subscriptions.redis_bus import RedisChangeBus
from tests.support.api import token
from tests.support.graphql import device_row, insert
from tests.support.graphql_ws import GraphQLWS, read_api_app, serve

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
DEVICE = "subscription D($id: UUID!) { deviceUpdated(id: $id) { id status version } }"


def notice(n: int, tenant: str = "acme") -> ChangeNotice:
    return ChangeNotice("devices", tenant, "device", uuid.uuid4(), n, 100 + n)


@pytest.fixture
def channel() -> str:
    return f"vigil-test:{uuid.uuid4().hex}"


@contextlib.asynccontextmanager
async def redis_bus(channel: str, name: str = "vigil-test") -> AsyncIterator[RedisChangeBus]:
    client = Redis.from_url(REDIS_URL, client_name=name)
    bus = RedisChangeBus(client, channel=channel)
    try:
        yield bus
    finally:
        await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def any_bus(request, channel) -> AsyncIterator[ChangeBus]:
    if request.param == "local":
        yield LocalChangeBus()
        return
    async with redis_bus(channel) as bus:
        yield bus


async def test_every_listener_gets_what_is_published_after_it_listens_in_order(any_bus):
    early = [notice(0)]
    await any_bus.publish(early)  # nobody listens yet: nobody gets it
    async with any_bus.listen() as first, any_bus.listen() as second:
        sent = [notice(1), notice(2, "globex"), notice(3)]
        await any_bus.publish(sent[:2])
        await any_bus.publish(sent[2:])
        await any_bus.publish([])
        for notices in (first, second):
            assert [await anext(notices) for _ in sent] == sent


async def test_a_notice_from_the_projector_reaches_subscribers_on_every_api_process(
    channel, sqlite_url
):
    engine = create_engine(sqlite_url)
    await migrations.upgrade_async(engine)
    row = device_row("acme", "SN-fan")
    await insert(engine, devices, [row])
    bearer = {"authorization": f"Bearer {token('viewer', 'acme')}"}
    try:
        async with (
            redis_bus(channel) as projector_bus,
            api_process(channel, engine) as first,
            api_process(channel, engine) as second,
            GraphQLWS.connect(first, bearer) as one,
            GraphQLWS.connect(second, bearer) as two,
        ):
            for client in (one, two):
                await client.subscribe("d", DEVICE, {"id": str(row["id"])})
                assert (await client.data("d"))["deviceUpdated"]["status"] == "ONLINE"
            async with engine.begin() as conn:
                await conn.execute(
                    devices.update().where(devices.c.id == row["id"]).values(status="offline")
                )
            await projector_bus.publish(
                [ChangeNotice("devices", "acme", "device", row["id"], 3, 999)]
            )
            for client in (one, two):
                assert (await client.data("d"))["deviceUpdated"]["status"] == "OFFLINE"
    finally:
        await engine.dispose()


async def test_after_the_bus_connection_drops_watched_rows_are_read_again(channel, sqlite_url):
    engine = create_engine(sqlite_url)
    await migrations.upgrade_async(engine)
    row = device_row("acme", "SN-resync")
    await insert(engine, devices, [row])
    bearer = {"authorization": f"Bearer {token('viewer', 'acme')}"}
    name = f"vigil-test-{uuid.uuid4().hex[:8]}"
    try:
        async with (
            api_process(channel, engine, client_name=name) as url,
            GraphQLWS.connect(url, bearer) as client,
        ):
            await client.subscribe("d", DEVICE, {"id": str(row["id"])})
            assert (await client.data("d"))["deviceUpdated"]["status"] == "ONLINE"
            # A change whose notice is lost: only the resync can reveal it.
            async with engine.begin() as conn:
                await conn.execute(
                    devices.update().where(devices.c.id == row["id"]).values(status="offline")
                )
            assert await kill_connections(name) >= 1
            assert (await client.data("d"))["deviceUpdated"]["status"] == "OFFLINE"
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def api_process(channel: str, engine: Any, client_name: str = "vigil-test-api"):
    """What one API process holds: its own Redis client, hub, app and server."""
    async with redis_bus(channel, client_name) as bus:
        hub = build_hub(
            InMemoryEventStore(), build_mapper(), bus, engine=engine, bus_retry_delay=0.05
        )
        await hub.start()
        try:
            async with read_api_app(hub, engine, LocalChangeBus()) as app, serve(app) as url:
                yield url
        finally:
            await hub.stop()


async def kill_connections(client_name: str) -> int:
    admin = Redis.from_url(REDIS_URL)
    try:
        killed = 0
        for client in await admin.client_list():
            if client.get("name") == client_name:
                killed += await admin.client_kill_filter(_id=client["id"])
        return killed
    finally:
        await admin.aclose()
