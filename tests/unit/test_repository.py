"""Repository: cache, snapshots, recent idempotency keys and time travel, on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.device import Device
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.memory import InMemoryEventStore
from infrastructure.eventstore.port import ConcurrencyConflict, StreamRef
from infrastructure.eventstore.snapshots import InMemorySnapshotStore
from infrastructure.repository import Repository

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class CountingStore(InMemoryEventStore):
    """Counts loads so tests can prove the cache and snapshots avoid reads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[int] = []
        self.positions: list[int] = []

    async def load(self, ref, *, after_version=0, up_to_version=None, after_position=0):
        self.loads.append(after_version)
        self.positions.append(after_position)
        return await super().load(
            ref,
            after_version=after_version,
            up_to_version=up_to_version,
            after_position=after_position,
        )


async def register(repo: Repository, serial: str = "SN-1") -> StreamRef:
    device = Device.register(
        tenant_id="acme", serial_number=serial, hardware_profile="jetson", actor="op", at=T0
    )
    ref = StreamRef("acme", "device", device.id)
    loaded = await repo.load(ref)
    loaded.aggregate = device
    await repo.save(loaded, device.collect_events(), idempotency_key=f"register-{serial}")
    return ref


async def toggle(repo: Repository, ref: StreamRef, n: int, *, key_prefix: str = "t") -> None:
    for i in range(n):
        loaded = await repo.load(ref)
        device = loaded.aggregate
        assert isinstance(device, Device)
        at = T0 + timedelta(minutes=i + 1)
        if device.status == "offline":
            device.come_online(actor="dev", at=at)
        else:
            device.go_offline(actor="dev", at=at)
        await repo.save(loaded, device.collect_events(), idempotency_key=f"{key_prefix}-{i}")


def fresh_repo(store, snapshots=None, **kwargs) -> Repository:
    return Repository(store, build_mapper(), snapshots, **kwargs)


async def test_a_cached_aggregate_is_used_without_reading_the_store():
    store = CountingStore()
    repo = fresh_repo(store)
    ref = await register(repo)
    reads_after_register = len(store.loads)
    await toggle(repo, ref, 5)
    assert len(store.loads) == reads_after_register


async def test_a_cold_load_starts_from_the_latest_snapshot_and_reads_only_the_tail():
    store, snapshots = CountingStore(), InMemorySnapshotStore()
    writer = fresh_repo(store, snapshots, snapshot_every=4)
    ref = await register(writer)
    await toggle(writer, ref, 9)  # versions 2..10, snapshots at 4 and 8
    await writer.drain()
    record = await snapshots.get(ref)
    assert record is not None and record.version == 8

    reader = fresh_repo(store, snapshots, snapshot_every=4)
    loaded = await reader.load(ref)
    assert store.loads[-1] == 8  # read only what came after the snapshot
    assert store.positions[-1] == record.position
    assert loaded.version == 10
    rebuilt = await fresh_repo(store).load(ref)  # no snapshots: full replay
    assert loaded.aggregate == rebuilt.aggregate


async def test_idempotency_keys_older_than_the_snapshot_are_still_recognised():
    store, snapshots = InMemoryEventStore(), InMemorySnapshotStore()
    writer = fresh_repo(store, snapshots, snapshot_every=3)
    ref = await register(writer, "SN-9")
    await toggle(writer, ref, 7)
    await writer.drain()

    reader = fresh_repo(store, snapshots, snapshot_every=3)
    loaded = await reader.load(ref)
    first = loaded.keyed("register-SN-9")
    assert first is not None and first.version == 1 and first.duplicate
    assert loaded.keyed("t-0") is not None
    assert loaded.keyed("never-used") is None


async def test_only_the_most_recent_keys_are_kept_per_aggregate():
    repo = fresh_repo(InMemoryEventStore(), keys_kept=3)
    ref = await register(repo)
    await toggle(repo, ref, 5)
    loaded = await repo.load(ref)
    assert list(loaded.recent_keys) == ["t-2", "t-3", "t-4"]


async def test_a_failed_save_evicts_the_cached_aggregate():
    store = InMemoryEventStore()
    repo, rival = fresh_repo(store), fresh_repo(store)
    ref = await register(repo)
    await toggle(rival, ref, 1)  # another process moves the aggregate on

    loaded = await repo.load(ref)  # stale cached copy at version 1
    device = loaded.aggregate
    assert isinstance(device, Device) and loaded.version == 1
    device.go_offline(actor="dev", at=T0)
    with pytest.raises(ConcurrencyConflict) as conflict:
        await repo.save(loaded, device.collect_events())
    assert conflict.value.current_version == 2
    reloaded = await repo.load(ref)
    assert reloaded.version == 2 and reloaded is not loaded


async def test_time_travel_rebuilds_the_aggregate_at_a_version_or_a_time():
    repo = fresh_repo(InMemoryEventStore())
    ref = await register(repo)
    await toggle(repo, ref, 4)  # offline(v2, +1m), online(v3, +2m), offline(v4), online(v5)

    at_v2 = await repo.load_as_of(ref, version=2)
    assert isinstance(at_v2, Device) and at_v2.version == 2 and at_v2.status == "offline"
    at_time = await repo.load_as_of(ref, at=T0 + timedelta(minutes=2, seconds=30))
    assert isinstance(at_time, Device) and at_time.version == 3 and at_time.status == "online"
    before = await repo.load_as_of(ref, at=T0 - timedelta(seconds=1))
    assert before is None
