"""The projector against real JetStream and real databases (PostgreSQL and SQLite).

Histories are made by the real domain through the real event store
(``tests.support.scenario``); read models are checked against what that
history says, and against a build of the same stream from scratch.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import uuid4

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent
from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from domain import Device
from infrastructure.changes import ChangeNotice, LocalChangeBus
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import NewCommit, StreamRef
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.repository import Repository
from projections import tables
from projections.service import Projector
from projections.status import read_status
from tests.support.readmodels import dump
from tests.support.scenario import Summary, drive

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(jetstream_store: JetStreamEventStore) -> Repository:
    return Repository(jetstream_store, build_mapper())


@pytest.fixture
async def history(repository: Repository) -> Summary:
    return await drive(repository, devices=60)


def projector(engine: AsyncEngine, nats_server: str, config: JetStreamConfig, **kw) -> Projector:
    kw.setdefault("idle_timeout", 0.2)
    return Projector(engine, nats_server, config, **kw)


async def rows(engine: AsyncEngine, table: sa.Table, *where) -> list[dict]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(table).where(*where))).mappings()]


async def test_read_models_follow_a_fleets_history(
    db_engine: AsyncEngine, nats_server: str, jetstream_config: JetStreamConfig, history: Summary
):
    head = await projector(db_engine, nats_server, jetstream_config).catch_up()

    devices = {row["id"]: row for row in await rows(db_engine, tables.devices)}
    assert set(devices) == set(history.devices)
    assert {devices[d]["status"] for d in history.devices[-3:]} == {"decommissioned"}
    assert all(row["serial_number"].startswith("SN-7-") for row in devices.values())
    fleets = {row["id"]: row for row in await rows(db_engine, tables.fleets)}
    for index, fleet_id in enumerate(history.fleets):
        fleet = fleets[fleet_id]
        assert fleet["rollout_status"] is None and fleet["rollout_count"] == 1
        if index % 2:  # the scenario makes every other rollout fail
            assert fleet["last_rollout_outcome"] == "rolled_back"
            assert fleet["last_rollout_reason"] == "failure threshold crossed"
        else:
            assert fleet["last_rollout_outcome"] == "completed"
            assert fleet["current_model_version"] == "1.1.0"
    models = {row["model_version"]: row for row in await rows(db_engine, tables.models)}
    assert {v: m["stage"] for v, m in models.items()} == {
        "1.0.0": "deprecated",
        "1.1.0": "production",
        "2.0.0": "registered",
    }
    assert len(models["1.1.0"]["sha256"]) == 64 and models["1.1.0"]["size_bytes"] == 1_000_001
    checkpoints = (await dump(db_engine, names=()))["checkpoints"]
    assert checkpoints == {"devices": head, "fleets": head, "models": head, "timeline": head}


async def test_fleet_counts_match_the_devices_they_count(
    db_engine: AsyncEngine, nats_server: str, jetstream_config: JetStreamConfig, history: Summary
):
    await projector(db_engine, nats_server, jetstream_config).catch_up()

    devices = await rows(db_engine, tables.devices)
    expected: Counter[tuple] = Counter()
    for device in devices:
        if device["fleet_id"] is not None:
            expected[(device["fleet_id"], "status", device["status"])] += 1
            expected[(device["fleet_id"], "model", device["reported_model_version"] or "")] += 1
    counted = {
        (row["fleet_id"], row["dimension"], row["key"]): row["count"]
        for row in await rows(db_engine, tables.fleet_device_counts)
    }
    assert counted == dict(expected)
    assert all(count > 0 for count in counted.values())


async def test_the_timeline_records_every_event_with_actor_and_time(
    db_engine: AsyncEngine,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    jetstream_store: JetStreamEventStore,
    history: Summary,
):
    await projector(db_engine, nats_server, jetstream_config).catch_up()

    stored = [
        (c.ref.id, e.originator_version) async for c in jetstream_store.read_all() for e in c.events
    ]
    timeline = await rows(db_engine, tables.timeline)
    assert sorted((r["aggregate_id"], r["version"]) for r in timeline) == sorted(stored)
    device = history.devices[0]
    trail = sorted((r for r in timeline if r["aggregate_id"] == device), key=lambda r: r["version"])
    assert [r["event_type"] for r in trail[:3]] == ["Registered", "AssignedToFleet", "CameOnline"]
    assert trail[0]["actor"] == "provisioning"
    assert trail[0]["payload"]["serial_number"] == "SN-7-00000"
    assert all(r["occurred_at"].tzinfo is not None for r in trail)
    assert [r["occurred_at"] for r in trail] == sorted(r["occurred_at"] for r in trail)


async def test_postgres_and_sqlite_build_the_same_read_models(
    pg_url: str,
    sqlite_url: str,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    history: Summary,
):
    built: list[dict] = []
    for url in (pg_url, sqlite_url):
        engine = create_engine(url)
        try:
            await migrations.upgrade_async(engine)
            await projector(
                engine, nats_server, jetstream_config, durable=f"p{len(built)}"
            ).catch_up()
            built.append(await dump(engine))
        finally:
            await engine.dispose()

    postgres, sqlite = built
    assert postgres["timeline"] and postgres["devices"]
    assert postgres == sqlite


async def test_the_projector_resumes_after_a_stop_where_it_left_off(
    db_engine: AsyncEngine,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    repository: Repository,
    history: Summary,
    tmp_path,
):
    await projector(db_engine, nats_server, jetstream_config).catch_up()
    await drive(repository, tenant="globex", devices=20, seed=3)
    head = await projector(db_engine, nats_server, jetstream_config).catch_up()

    resumed = await dump(db_engine)
    scratch = await _scratch_build(tmp_path, nats_server, jetstream_config)
    assert resumed == scratch
    assert set(resumed["checkpoints"].values()) == {head}


async def test_a_batch_committed_but_never_acknowledged_is_not_applied_again(
    db_engine: AsyncEngine,
    nats_server: str,
    nats_client: Client,
    jetstream_config: JetStreamConfig,
    history: Summary,
    tmp_path,
):
    from projections import catalog
    from projections.envelope import CommitDecoder
    from projections.feed import ConsumerFeed
    from projections.runner import ProjectionGroup

    # A projector that dies between its commit and its ack (the crash window).
    group = ProjectionGroup(
        catalog.build(dialect=db_engine.dialect.name),
        CommitDecoder(build_mapper(), jetstream_config.subject_prefix),
    )
    async with db_engine.connect() as conn:
        async with conn.begin():
            after = await group.start(conn)
        feed = ConsumerFeed(nats_client, jetstream_config, "vigil-projector", batch_size=100)
        await feed.open(after)
        delivery = await feed.next()
        assert delivery is not None
        prepared = await group.prepare(delivery.commits)
        async with conn.begin():
            await group.write(conn, prepared)
        await feed.close()  # no ack

    await projector(db_engine, nats_server, jetstream_config).catch_up()

    assert await dump(db_engine) == await _scratch_build(tmp_path, nats_server, jetstream_config)


async def test_an_event_that_fails_to_apply_is_parked_and_the_projection_carries_on(
    db_engine: AsyncEngine,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    jetstream_store: JetStreamEventStore,
    repository: Repository,
):
    await drive(repository, devices=5)
    mapper = build_mapper()
    # A commit whose event class no longer exists, and an anomaly on a device never registered.
    ghost = StreamRef("acme", "device", uuid4())
    await jetstream_store.append(
        NewCommit(ghost, 0, [StoredEvent(ghost.id, 1, "domain.device:Device.Exploded", b"\x80")])
    )
    orphan = Device.register(
        tenant_id="acme", serial_number="ORPHAN-1", hardware_profile="x", actor="a", at=_at()
    )
    orphan.raise_anomaly("thermal", "critical", "hot", actor="device", at=_at())
    anomaly = mapper.to_stored_event(orphan.collect_events()[1])
    ref = StreamRef("acme", "device", orphan.id)
    await jetstream_store.append(
        NewCommit(ref, 0, [StoredEvent(orphan.id, 1, anomaly.topic, anomaly.state)])
    )
    await drive(repository, tenant="later", devices=3, seed=5)  # events after the bad ones
    registry = CollectorRegistry()

    head = await projector(db_engine, nats_server, jetstream_config, registry=registry).catch_up()

    letters = (await dump(db_engine, names=()))["dead_letters"]
    parked = {(row["projection"], row["aggregate_id"]) for row in letters}
    assert parked == {("devices", ghost.id), ("timeline", ghost.id), ("devices", orphan.id)}
    unknown = next(r for r in letters if r["aggregate_id"] == ghost.id)
    assert "Exploded" in unknown["error"] or "Exploded" in unknown["event_type"]
    no_row = next(r for r in letters if r["aggregate_id"] == orphan.id)
    assert no_row["event_type"] == "device.AnomalyRaised" and "no row yet" in no_row["error"]
    later = await rows(db_engine, tables.devices, tables.devices.c.tenant_id == "later")
    assert len(later) == 3  # the projection carried on past them
    metric = registry.get_sample_value
    assert metric("vigil_projection_dead_letters_total", {"projection": "devices"}) == 2
    assert metric("vigil_projection_dead_letters_parked", {"projection": "timeline"}) == 1
    statuses = {s.name: s for s in await read_status(db_engine, head)}
    assert statuses["devices"].dead_letters == 2 and statuses["devices"].lag == 0


async def test_metrics_report_position_lag_and_events_applied(
    db_engine: AsyncEngine, nats_server: str, jetstream_config: JetStreamConfig, history: Summary
):
    registry = CollectorRegistry()

    head = await projector(db_engine, nats_server, jetstream_config, registry=registry).catch_up()

    for name in ("devices", "fleets", "models", "timeline"):
        labels = {"projection": name}
        assert registry.get_sample_value("vigil_projection_position", labels) == head
        assert registry.get_sample_value("vigil_projection_lag", labels) == 0
    timeline = await rows(db_engine, tables.timeline)
    applied = registry.get_sample_value(
        "vigil_projection_events_applied_total", {"projection": "timeline"}
    )
    assert applied == len(timeline)


class RowReadingBus(LocalChangeBus):
    """Reads each device's row the moment its notice is published."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine
        self.seen: list[tuple[ChangeNotice, int | None]] = []

    async def publish(self, notices: list[ChangeNotice]) -> None:
        for notice in notices:
            if notice.projection == "devices":
                found = await rows(
                    self.engine, tables.devices, tables.devices.c.id == notice.aggregate_id
                )
                self.seen.append((notice, found[0]["version"] if found else None))
        await super().publish(notices)


async def test_change_notices_come_after_the_rows_are_committed(
    db_engine: AsyncEngine, nats_server: str, jetstream_config: JetStreamConfig, history: Summary
):
    bus = RowReadingBus(db_engine)

    await projector(db_engine, nats_server, jetstream_config, bus=bus, batch_size=50).catch_up()

    assert {notice.aggregate_id for notice, _ in bus.seen} == set(history.devices)
    assert all(version is not None and version >= n.version for n, version in bus.seen)
    positions = [notice.position for notice, _ in bus.seen]
    assert positions == sorted(positions)


async def test_a_second_projector_waits_as_a_standby_and_takes_over(
    db_engine: AsyncEngine,
    nats_server: str,
    jetstream_config: JetStreamConfig,
    repository: Repository,
    history: Summary,
    tmp_path,
):
    first = projector(db_engine, nats_server, jetstream_config)
    second = projector(db_engine, nats_server, jetstream_config)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(first.run(stop_first))
    await first.caught_up.wait()
    standby = asyncio.create_task(second.run(stop_second))
    stop_first.set()
    await running
    # Written once the first has stopped: only the standby can apply these.
    await drive(repository, tenant="initech", devices=10, seed=11)
    await until_applied(db_engine, "devices", await repository.store.head_position())
    assert first.metrics.registry is not second.metrics.registry
    stop_second.set()
    await standby

    assert await dump(db_engine) == await _scratch_build(tmp_path, nats_server, jetstream_config)
    applied = second.metrics.registry.get_sample_value(
        "vigil_projection_events_applied_total", {"projection": "devices"}
    )
    assert applied  # the standby did the work after the first stopped


async def until_applied(engine: AsyncEngine, projection: str, position: int) -> None:
    """Poll the checkpoint (up to 10 s) until ``projection`` has applied ``position``."""
    from projections import checkpoints

    for _ in range(1_000):
        async with engine.connect() as conn:
            reached = await checkpoints.read(conn)
        if projection in reached and reached[projection].position >= position:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{projection} never applied position {position}")


async def _scratch_build(tmp_path, nats_server: str, config: JetStreamConfig) -> dict:
    """The same stream projected into a brand-new SQLite database."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'scratch-{uuid4().hex}.db'}")
    try:
        await migrations.upgrade_async(engine)
        await projector(
            engine, nats_server, config, durable=f"scratch-{uuid4().hex[:8]}"
        ).catch_up()
        return await dump(engine)
    finally:
        await engine.dispose()


def _at():
    from datetime import UTC, datetime

    return datetime(2031, 1, 1, tzinfo=UTC)


async def test_rows_read_at_write_time_are_folded_in_order_across_pipelined_batches(
    db_engine: AsyncEngine,
):
    """Batches are prepared ahead of their writes; a row not in memory waits for its read.

    Three batches touch one device whose row only the database has: the second
    is prepared before the first is written and the third after, when memory
    holds the first batch's row but not yet the second's.
    """
    from infrastructure.eventstore.jetstream import aggregate_subject, encode_events
    from projections import catalog
    from projections.envelope import CommitDecoder, RawCommit

    mapper = build_mapper()
    decoder = CommitDecoder(mapper, "vigil.evt")
    device = Device.register(
        tenant_id="acme", serial_number="SN-P", hardware_profile="x", actor="a", at=_at()
    )
    subject = aggregate_subject("vigil.evt", StreamRef("acme", "device", device.id))

    def commits() -> list[list]:
        """One commit per pending event, at positions following the events' versions."""
        return [
            decoder.decode(  # type: ignore[misc]
                RawCommit(subject, e.originator_version, encode_events([mapper.to_stored_event(e)]))
            )
            for e in device.collect_events()
        ]

    async def write(projection, prepared) -> None:
        async with db_engine.begin() as conn:
            await conn.execute(sa.text("SELECT 1"))  # as the runner's checkpoint lock would
            await projection.write(conn, prepared)

    first = catalog.build(["devices"], dialect=db_engine.dialect.name)[0]
    [registered] = commits()
    await write(first, first.prepare(registered, [], None))  # the row exists in the database
    projection = catalog.build(["devices"], dialect=db_engine.dialect.name)[0]  # a cold cache
    for severity in ("info", "warning", "critical"):
        device.raise_anomaly("thermal", severity, "hot", actor="d", at=_at())
    a, b, c = commits()
    one = projection.prepare(a, [], None)
    two = projection.prepare(b, [], None)
    await write(projection, one)
    three = projection.prepare(c, [], None)
    await write(projection, two)
    await write(projection, three)

    [row] = await rows(db_engine, tables.devices, tables.devices.c.id == device.id)
    assert (row["anomaly_count"], row["version"], row["health"]) == (3, 4, "critical")


async def test_messages_deleted_from_the_stream_are_stepped_over_not_waited_for(
    db_engine: AsyncEngine,
    nats_server: str,
    nats_client: Client,
    jetstream_config: JetStreamConfig,
    repository: Repository,
):
    await drive(repository, tenant="before", devices=5, seed=31)
    gone = await drive(repository, tenant="gone", devices=1, seed=32)
    await drive(repository, tenant="after", devices=5, seed=33)
    js = nats_client.jetstream()
    deleted = 0
    for seq in range(1, await repository.store.head_position() + 1):
        message = await js.get_msg(jetstream_config.stream, seq)
        if ".gone." in (message.subject or ""):
            await js.delete_msg(jetstream_config.stream, seq)  # an operator's doing
            deleted += 1

    head = await projector(db_engine, nats_server, jetstream_config).catch_up()

    tenants = {row["tenant_id"] for row in await rows(db_engine, tables.devices)}
    assert tenants == {"before", "after"} and deleted == gone.commits
    assert set((await dump(db_engine, names=()))["checkpoints"].values()) == {head}
