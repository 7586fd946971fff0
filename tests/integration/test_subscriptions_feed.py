"""The live event feed on real JetStream: replay racing live writes loses and repeats nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import pytest

from commands.catalog import COMMANDS
from commands.catalog.devices import RaiseAnomaly, RegisterDevice
from commands.spec import Context
from infrastructure.changes import LocalChangeBus
from infrastructure.eventstore.codec import build_mapper
from read_api.subscriptions import build_hub
from read_api.subscriptions.events import EventFilter, to_records
from read_api.subscriptions.feed import JetStreamReplay
from tests.support.api import SECRET
from vigil.bootstrap import build_services

pytestmark = pytest.mark.integration


@pytest.fixture
async def hub(nats_client, jetstream_store):
    hub = build_hub(jetstream_store, build_mapper(), LocalChangeBus(), nc=nats_client)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
def service(jetstream_store):
    return build_services(jetstream_store, jwt_secret=SECRET).service


async def register(service, tenant: str) -> uuid.UUID:
    ctx = Context(tenant, "tester", datetime.now(UTC))
    body = RegisterDevice(serial_number=f"SN-{uuid.uuid4().hex}", hardware_profile="orin")
    return (await service.execute(COMMANDS["RegisterDevice"], body, ctx)).result.ref.id


async def anomaly(service, tenant: str, device: uuid.UUID, n: int) -> int:
    ctx = Context(tenant, "tester", datetime.now(UTC))
    body = RaiseAnomaly(device_id=device, kind=f"k{n}", severity="info")
    return (await service.execute(COMMANDS["RaiseAnomaly"], body, ctx)).result.position


async def test_the_feed_hands_over_each_new_commit_decoded_like_read_all(
    hub, service, jetstream_store
):
    live = asyncio.Event()
    device = await register(service, "acme")
    stream = hub.events.stream(EventFilter("acme"), 0, on_live=live.set)
    async with contextlib.aclosing(stream) as events:
        assert [r.aggregate_id for r in await anext(events)] == [device]
        waiting = asyncio.ensure_future(anext(events))
        await live.wait()
        position = await anomaly(service, "acme", device, 0)
        (record,) = await waiting
    assert hub.events.position >= position
    stored = [c async for c in jetstream_store.read_all(position)]
    assert [record] == to_records(build_mapper(), stored[0])


async def test_a_subscriber_starting_amid_concurrent_writers_gets_each_commit_once_in_order(
    hub, service
):
    devices = [await register(service, "acme") for _ in range(4)]
    noise = await register(service, "globex")
    total = 200

    async def write(index: int) -> list[int]:
        written = []
        for n in range(total // len(devices)):
            written.append(await anomaly(service, "acme", devices[index], n))
            await anomaly(service, "globex", noise, n)
        return written

    writers = [asyncio.create_task(write(i)) for i in range(len(devices))]
    seen: list[int] = []
    async with contextlib.aclosing(hub.events.stream(EventFilter("acme"), 0)) as events:
        while len(seen) < len(devices) + total:
            seen += [r.position for r in await anext(events)]
    written = [p for task in writers for p in await task]
    assert seen == sorted(set(seen)), "in order, each once"
    assert set(seen) >= set(written)
    assert len(seen) == len(devices) + total


async def consumers(nats_client, jetstream_store) -> int:
    info = await nats_client.jetstream().stream_info(jetstream_store.config.stream)
    return int(info.state.consumer_count)


async def until(condition, what: str) -> None:
    """Poll ``condition`` (it asks the server) for up to five seconds."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_the_feed_follows_the_stream_only_while_events_are_subscribed(
    nats_client, jetstream_store, service
):
    hub = build_hub(
        jetstream_store, build_mapper(), LocalChangeBus(), nc=nats_client, live_idle=0.05
    )
    await hub.start()
    try:
        device = await register(service, "acme")
        assert hub.feed is not None and not hub.feed.running
        assert await consumers(nats_client, jetstream_store) == 0

        live = asyncio.Event()
        stream = hub.events.stream(EventFilter("acme"), 0, on_live=live.set)
        async with contextlib.aclosing(stream) as events:
            assert [r.aggregate_id for r in await anext(events)] == [device]
            assert hub.feed.running
            waiting = asyncio.ensure_future(anext(events))
            await live.wait()
            first = await anomaly(service, "acme", device, 0)
            assert [r.position for r in await waiting] == [first]

        async def stopped() -> bool:
            return not hub.feed.running

        await until(stopped, "the feed stops once nobody needs it")
        seen_by_feed = hub.feed.commits_seen
        missed = [await anomaly(service, "acme", device, n) for n in (1, 2)]
        assert hub.feed.commits_seen == seen_by_feed  # nobody decodes them

        live.clear()
        seen: list[int] = []
        stream = hub.events.stream(EventFilter("acme"), first, on_live=live.set)
        async with contextlib.aclosing(stream) as events:
            while len(seen) < len(missed):
                seen += [r.position for r in await anext(events)]
            waiting = asyncio.ensure_future(anext(events))
            await live.wait()
            newest = await anomaly(service, "acme", device, 3)
            seen += [r.position for r in await waiting]
        assert seen == [*missed, newest]
        assert hub.feed.starts == 2
    finally:
        await hub.stop()


async def test_a_filtered_replay_reads_only_the_subjects_it_names(
    nats_client, jetstream_store, service
):
    replay = JetStreamReplay(nats_client.jetstream(), jetstream_store)
    mine = await register(service, "acme")
    other = await register(service, "acme")
    foreign = await register(service, "globex")
    positions = [await anomaly(service, "acme", mine, n) for n in range(3)]
    await anomaly(service, "acme", other, 0)
    await anomaly(service, "globex", foreign, 0)

    by_id = [c async for c in replay(EventFilter("acme", aggregate_id=mine), 1)]
    assert {c.ref.id for c in by_id} == {mine}
    assert [c.position for c in by_id][1:] == positions
    by_type = [c async for c in replay(EventFilter("acme", aggregate_type="device"), 1)]
    assert {c.ref.id for c in by_type} == {mine, other}
    assert [c async for c in replay(EventFilter("acme", aggregate_type="fleet"), 1)] == []
    after_all = positions[-1] + 10
    assert [c async for c in replay(EventFilter("acme"), after_all)] == []
    assert [c.position for c in by_id] == sorted(c.position for c in by_id)
    assert await consumers(nats_client, jetstream_store) == 0  # each replay deleted its own
