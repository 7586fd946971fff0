"""Schema evolution: events and snapshots written before Device v2 still load.

Device.Registered v1 had no ``firmware_version``. The bytes below are what a
v1 writer stored (no ``class_version`` key); loading them must go through
``upcast_v1_v2`` on both stores, for events and for snapshots alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.device import Device
from domain.identity import device_id
from infrastructure.eventstore.codec import MsgpackTranscoder, build_mapper
from infrastructure.eventstore.memory import InMemoryEventStore
from infrastructure.eventstore.port import NewCommit, StreamRef
from infrastructure.eventstore.snapshots import InMemorySnapshotStore, SnapshotRecord
from infrastructure.repository import Repository

AT = datetime(2025, 6, 1, tzinfo=UTC)
TRANSCODER = MsgpackTranscoder()


def v1_registered(ref: StreamRef) -> StoredEvent:
    state = {
        "timestamp": AT,
        "originator_topic": get_topic(Device),
        "actor": "legacy-importer",
        "tenant_id": ref.tenant,
        "serial_number": "SN-OLD-1",
        "hardware_profile": "jetson-nano",
    }
    return StoredEvent(ref.id, 1, get_topic(Device.Registered), TRANSCODER.encode(state))


async def test_a_device_registered_in_the_v1_shape_loads_on_the_memory_store():
    await check_v1_registration_loads(InMemoryEventStore())


@pytest.mark.integration
async def test_a_device_registered_in_the_v1_shape_loads_on_jetstream(jetstream_store):
    await check_v1_registration_loads(jetstream_store)


async def check_v1_registration_loads(store) -> None:
    ref = StreamRef("acme", "device", device_id("acme", "SN-OLD-1"))
    await store.append(NewCommit(ref, 0, [v1_registered(ref)]))

    loaded = await Repository(store, build_mapper()).load(ref)
    device = loaded.aggregate
    assert isinstance(device, Device)
    assert device.serial_number == "SN-OLD-1" and device.hardware_profile == "jetson-nano"
    assert device.firmware_version is None
    assert device.created_on == AT

    repo = Repository(store, build_mapper())  # a v1 device takes v2 commands
    reloaded = await repo.load(ref)
    assert isinstance(reloaded.aggregate, Device)
    reloaded.aggregate.go_offline(actor="liveness", at=AT)
    await repo.save(reloaded, reloaded.aggregate.collect_events())
    assert await store.current_version(ref) == 2


async def test_a_snapshot_taken_at_v1_loads_with_the_new_attribute():
    ref = StreamRef("acme", "device", device_id("acme", "SN-OLD-1"))
    store, snapshots = InMemoryEventStore(), InMemorySnapshotStore()
    await store.append(NewCommit(ref, 0, [v1_registered(ref)]))

    v1_state = {
        "_created_on": AT,
        "_modified_on": AT,
        "tenant_id": "acme",
        "serial_number": "SN-OLD-1",
        "hardware_profile": "jetson-nano",
        "fleet_id": None,
        "desired_model_id": None,
        "desired_model_version": None,
        "reported_model_id": None,
        "reported_model_version": None,
        "status": "registered",
        "last_seen_at": None,
        "anomaly_count": 0,
        "last_install_error": None,
    }
    snapshot_state = {"timestamp": AT, "topic": get_topic(Device), "state": v1_state}
    await snapshots.put(
        SnapshotRecord(
            ref=ref,
            version=1,
            position=1,
            topic=get_topic(Device.Snapshot),
            state=TRANSCODER.encode(snapshot_state),
        )
    )

    loaded = await Repository(store, build_mapper(), snapshots).load(ref)
    device = loaded.aggregate
    assert isinstance(device, Device) and device.version == 1
    assert device.firmware_version is None and device.serial_number == "SN-OLD-1"
