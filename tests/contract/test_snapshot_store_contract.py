"""What every SnapshotStore adapter promises, run against each adapter."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from infrastructure.eventstore.port import StreamRef
from infrastructure.eventstore.snapshots import (
    InMemorySnapshotStore,
    KeyedCommit,
    SnapshotRecord,
    SnapshotStore,
)
from infrastructure.eventstore.snapshots_kv import KeyValueSnapshotStore


def device(tenant: str = "acme") -> StreamRef:
    return StreamRef(tenant, "device", uuid4())


def snapshot(ref: StreamRef, version: int, **keys: KeyedCommit) -> SnapshotRecord:
    return SnapshotRecord(
        ref=ref,
        version=version,
        position=version * 10,
        topic="domain.device:Device.Snapshot",
        state=f"state at {version}".encode(),
        recent_keys=dict(keys),
    )


class SnapshotStoreContract:
    @pytest.fixture
    def snapshots(self) -> SnapshotStore:
        raise NotImplementedError("each adapter's test class provides a snapshot store")

    async def test_an_aggregate_without_a_snapshot_has_none(self, snapshots: SnapshotStore):
        assert await snapshots.get(device()) is None

    async def test_a_snapshot_comes_back_as_it_was_put(self, snapshots: SnapshotStore):
        ref = device()
        record = snapshot(ref, 50, retry=KeyedCommit(position=480, version=48, event_count=2))
        await snapshots.put(record)
        assert await snapshots.get(ref) == record

    async def test_a_newer_snapshot_replaces_an_older_one(self, snapshots: SnapshotStore):
        ref = device()
        await snapshots.put(snapshot(ref, 50))
        await snapshots.put(snapshot(ref, 100))
        assert await snapshots.get(ref) == snapshot(ref, 100)

    async def test_an_older_snapshot_never_replaces_a_newer_one(self, snapshots: SnapshotStore):
        ref = device()
        await snapshots.put(snapshot(ref, 100))
        await snapshots.put(snapshot(ref, 50))
        assert await snapshots.get(ref) == snapshot(ref, 100)

    async def test_racing_writers_leave_the_newest_snapshot(self, snapshots: SnapshotStore):
        ref = device()
        await asyncio.gather(*(snapshots.put(snapshot(ref, v)) for v in (30, 90, 10, 60, 20)))
        assert await snapshots.get(ref) == snapshot(ref, 90)

    async def test_snapshots_of_different_aggregates_are_independent(
        self, snapshots: SnapshotStore
    ):
        acme, globex = device("acme"), StreamRef("globex", "device", uuid4())
        same_id = StreamRef("globex", "device", acme.id)
        await snapshots.put(snapshot(acme, 5))
        await snapshots.put(snapshot(globex, 7))
        assert await snapshots.get(acme) == snapshot(acme, 5)
        assert await snapshots.get(globex) == snapshot(globex, 7)
        assert await snapshots.get(same_id) is None


class TestInMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self) -> SnapshotStore:
        return InMemorySnapshotStore()


@pytest.mark.integration
class TestKeyValueSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self, kv_snapshot_store: KeyValueSnapshotStore) -> SnapshotStore:
        return kv_snapshot_store

    async def test_a_process_with_an_outdated_view_never_replaces_a_newer_snapshot(
        self, nats_client, jetstream_config
    ):
        # Two processes, each remembering what it last wrote of the same key.
        js = nats_client.jetstream()
        first = await KeyValueSnapshotStore.open(js, jetstream_config)
        second = await KeyValueSnapshotStore.open(js, jetstream_config)
        ref = device()
        await first.put(snapshot(ref, 50))
        await second.put(snapshot(ref, 100))  # second has never seen the key: create fails
        await first.put(snapshot(ref, 80))  # first remembers 50: its conditional write fails
        assert await first.get(ref) == snapshot(ref, 100)
        await first.put(snapshot(ref, 150))
        await second.put(snapshot(ref, 120))  # second remembers 100, first has written 150
        assert await second.get(ref) == snapshot(ref, 150)
        await second.put(snapshot(ref, 200))
        await first.put(snapshot(ref, 250))  # first remembers 150: conflict, compare, write
        assert await second.get(ref) == snapshot(ref, 250)
