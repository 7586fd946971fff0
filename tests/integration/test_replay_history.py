"""``aggregate_as_of`` on real JetStream: a device as of a version, as of a time, and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import orjson
import pytest

from domain.device import Device
from infrastructure.eventstore.codec import build_mapper, new_cipher_key
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import StreamRef
from infrastructure.replay.describe import to_json
from infrastructure.replay.history import ReplayFailed, aggregate_as_of
from infrastructure.repository import Repository

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1, T2, T3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))
FLEET = uuid4()
MAPPER = build_mapper()


async def device_with_a_history(store: JetStreamEventStore) -> tuple[StreamRef, list[int]]:
    """v1 registered @T0; v2 in a fleet @T1; v3 online + v4 anomaly @T2 (one commit); v5 @T3."""
    repo = Repository(store, MAPPER)
    device = Device.register(
        tenant_id="acme",
        serial_number=f"SN-{uuid4().hex[:8]}",
        hardware_profile="j",
        actor="op",
        at=T0,
    )
    ref = StreamRef("acme", "device", device.id)
    loaded = await repo.load(ref)
    loaded.aggregate = device
    positions = [(await repo.save(loaded, device.collect_events())).position]
    for decide in (
        lambda d: d.assign_to_fleet(FLEET, actor="op", at=T1),
        lambda d: (
            d.come_online(actor="dev", at=T2),
            d.raise_anomaly("thermal", "critical", "fan", actor="dev", at=T2),
        ),
        lambda d: d.decommission("retired", actor="op", at=T3),
    ):
        loaded = await repo.load(ref)
        decide(loaded.aggregate)
        assert loaded.aggregate is not None
        positions.append((await repo.save(loaded, loaded.aggregate.collect_events())).position)
    return ref, positions


async def test_as_of_a_version_shows_the_state_then_and_the_events_up_to_it(
    jetstream_store: JetStreamEventStore,
):
    ref, positions = await device_with_a_history(jetstream_store)

    found = await aggregate_as_of(jetstream_store, MAPPER, ref, version=2)

    assert found.state is not None
    assert (found.state["version"], found.state["status"], found.state["fleet_id"]) == (
        2,
        "registered",
        FLEET,
    )
    assert found.current_version == 5
    assert [(e.position, e.version, e.name, e.actor) for e in found.history] == [
        (positions[0], 1, "Device.Registered", "op"),
        (positions[1], 2, "Device.AssignedToFleet", "op"),
    ]
    assert found.history[1].data == {"fleet_id": FLEET}


async def test_a_version_inside_a_commit_stops_between_its_events(
    jetstream_store: JetStreamEventStore,
):
    ref, positions = await device_with_a_history(jetstream_store)

    found = await aggregate_as_of(jetstream_store, MAPPER, ref, version=3)

    assert found.state is not None and (found.state["status"], found.state["anomaly_count"]) == (
        "online",
        0,
    )
    assert [(e.position, e.version) for e in found.history][-1] == (positions[2], 3)


async def test_as_of_a_time_takes_every_event_that_had_happened_by_then(
    jetstream_store: JetStreamEventStore,
):
    ref, _ = await device_with_a_history(jetstream_store)

    between = await aggregate_as_of(jetstream_store, MAPPER, ref, at=T1 + timedelta(minutes=30))
    exactly = await aggregate_as_of(jetstream_store, MAPPER, ref, at=T2)
    before = await aggregate_as_of(jetstream_store, MAPPER, ref, at=T0 - timedelta(seconds=1))

    assert between.state is not None and between.state["version"] == 2
    assert exactly.state is not None and exactly.state["anomaly_count"] == 1
    assert [e.occurred_at for e in exactly.history] == [T0, T1, T2, T2]
    assert (before.aggregate, before.history) == (None, [])


async def test_now_is_the_latest_version_and_it_reads_as_json(jetstream_store: JetStreamEventStore):
    ref, _ = await device_with_a_history(jetstream_store)

    found = await aggregate_as_of(jetstream_store, MAPPER, ref)
    shown = orjson.loads(to_json(found.as_json()))

    assert (shown["version"], shown["current_version"], shown["state"]["status"]) == (
        5,
        5,
        "decommissioned",
    )
    assert shown["id"] == str(ref.id) and shown["state"]["fleet_id"] == str(FLEET)
    assert [e["event"] for e in shown["history"]][-1] == "Device.Decommissioned"
    assert shown["history"][-1]["occurred_at"] == T3.isoformat()


async def test_events_it_cannot_decode_fail_with_a_hint_at_the_settings(
    jetstream_store: JetStreamEventStore,
):
    ref, _ = await device_with_a_history(jetstream_store)
    encrypted = build_mapper(cipher_key=new_cipher_key())

    with pytest.raises(ReplayFailed) as failed:
        await aggregate_as_of(jetstream_store, encrypted, ref)

    assert str(failed.value).startswith(f"{ref} cannot be rebuilt")
    assert "VIGIL_CIPHER_KEY" in str(failed.value)
