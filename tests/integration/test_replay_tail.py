"""``tail`` on real JetStream: filters, "the last N", and following events as they land."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from nats.aio.client import Client

from domain.device import Device
from domain.fleet import Fleet
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import StreamRef
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.replay.stream import StreamReader
from infrastructure.replay.tail import EventFilter, TailedEvent, start_of_last, tail
from infrastructure.repository import Repository

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAPPER = build_mapper()


async def new_device(repo: Repository, tenant: str) -> StreamRef:
    device = Device.register(
        tenant_id=tenant,
        serial_number=f"SN-{uuid4().hex[:8]}",
        hardware_profile="j",
        actor="op",
        at=AT,
    )
    ref = StreamRef(tenant, "device", device.id)
    loaded = await repo.load(ref)
    loaded.aggregate = device
    await repo.save(loaded, device.collect_events())
    return ref


async def anomaly(repo: Repository, ref: StreamRef, kind: str) -> None:
    loaded = await repo.load(ref)
    assert isinstance(loaded.aggregate, Device)
    loaded.aggregate.raise_anomaly(kind, "info", "", actor="sensor", at=AT)
    await repo.save(loaded, loaded.aggregate.collect_events())


async def new_fleet(repo: Repository, tenant: str) -> StreamRef:
    fleet = Fleet.create(tenant_id=tenant, name=f"fleet-{uuid4().hex[:6]}", actor="op", at=AT)
    ref = StreamRef(tenant, "fleet", fleet.id)
    loaded = await repo.load(ref)
    loaded.aggregate = fleet
    await repo.save(loaded, fleet.collect_events())
    return ref


@pytest.fixture
def reader(nats_client: Client, jetstream_config: JetStreamConfig) -> StreamReader:
    return StreamReader(nats_client, jetstream_config)


async def shown(reader: StreamReader, where: EventFilter, **bounds) -> list[TailedEvent]:
    return [item async for item in tail(reader, MAPPER, where, **bounds)]


async def mixed_log(store: JetStreamEventStore) -> dict[str, StreamRef]:
    repo = Repository(store, MAPPER)
    refs = {"a1": await new_device(repo, "acme"), "g1": await new_device(repo, "globex")}
    refs["fleet"] = await new_fleet(repo, "acme")
    for n in range(3):
        await anomaly(repo, refs["a1"], f"a{n}")
        await anomaly(repo, refs["g1"], f"g{n}")
    return refs


async def test_filters_narrow_by_tenant_type_id_and_event(
    reader: StreamReader, jetstream_store: JetStreamEventStore
):
    refs = await mixed_log(jetstream_store)
    head = await reader.head()

    acme = await shown(reader, EventFilter(tenant="acme"), start=1, until=head)
    devices = await shown(reader, EventFilter(type="device"), start=1, until=head)
    one = await shown(reader, EventFilter(id=refs["g1"].id), start=1, until=head)
    registered = await shown(
        reader, EventFilter(events=("Registered", "Fleet.Created")), start=1, until=head
    )

    assert {i.ref for i in acme} == {refs["a1"], refs["fleet"]} and len(acme) == 5
    assert {i.ref for i in devices} == {refs["a1"], refs["g1"]} and len(devices) == 8
    assert [i.version for i in one] == [1, 2, 3, 4]
    assert [i.name for i in registered] == [
        "Device.Registered",
        "Device.Registered",
        "Fleet.Created",
    ]
    assert all(i.error is None and i.actor for i in acme + devices + one)
    assert [i.event.kind for i in one[1:]] == ["g0", "g1", "g2"]


async def test_the_last_n_matching_events_are_exactly_the_last_n(
    reader: StreamReader, jetstream_store: JetStreamEventStore
):
    refs = await mixed_log(jetstream_store)
    head = await reader.head()
    where = EventFilter(tenant="acme", events=("AnomalyRaised",))

    start, skip = await start_of_last(reader, where, 2, head)
    last_two = await shown(reader, where, start=start, skip=skip, until=head)
    start, skip = await start_of_last(reader, where, 50, head)
    all_of_them = await shown(reader, where, start=start, skip=skip, until=head)

    assert [(i.ref, i.event.kind) for i in last_two] == [(refs["a1"], "a1"), (refs["a1"], "a2")]
    assert [i.event.kind for i in all_of_them] == ["a0", "a1", "a2"]
    assert await start_of_last(reader, where, 0, head) == (head + 1, 0)


async def test_following_from_the_head_shows_events_appended_afterwards(
    reader: StreamReader, jetstream_store: JetStreamEventStore
):
    repo = Repository(jetstream_store, MAPPER)
    before = await new_device(repo, "acme")
    start = await reader.head() + 1
    follow = asyncio.create_task(shown(reader, EventFilter(tenant="acme"), start=start, limit=3))

    await new_device(repo, "globex")  # filtered out
    await anomaly(repo, before, "late-1")
    later = await new_device(repo, "acme")
    await anomaly(repo, later, "late-2")
    items = await asyncio.wait_for(follow, timeout=10)

    assert [(i.ref, i.version, i.name) for i in items] == [
        (before, 2, "Device.AnomalyRaised"),
        (later, 1, "Device.Registered"),
        (later, 2, "Device.AnomalyRaised"),
    ]
    assert all(i.actor in ("op", "sensor") and i.occurred_at == AT for i in items)


async def test_a_message_that_is_not_a_commit_shows_as_an_error(
    reader: StreamReader,
    jetstream_config: JetStreamConfig,
    nats_client: Client,
    jetstream_store: JetStreamEventStore,
):
    stray = uuid4()
    await nats_client.jetstream().publish(
        f"{jetstream_config.subject_prefix}.acme.device.{stray.hex}", b"?"
    )

    [item] = await shown(
        reader, EventFilter(events=("Registered",)), start=1, until=await reader.head()
    )

    assert item.ref == StreamRef("acme", "device", stray)
    assert item.error is not None and "not a commit" in item.error
