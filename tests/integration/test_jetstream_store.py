"""What only the JetStream adapter has to show: its layout, races, restarts and size."""

from __future__ import annotations

import asyncio
import contextlib
from itertools import pairwise
from pathlib import Path
from uuid import uuid4

import nats
import pytest
from nats.aio.client import Client

from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import (
    CommitResult,
    ConcurrencyConflict,
    InvalidCommit,
    StoreUnavailable,
    StreamRef,
)
from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream
from infrastructure.eventstore.snapshots import SnapshotRecord
from infrastructure.eventstore.snapshots_kv import KeyValueSnapshotStore
from infrastructure.natsd import NatsServer
from tests.conftest import unique_jetstream_config
from tests.contract.test_event_store_contract import commit, device, history, read_all

pytestmark = pytest.mark.integration


async def _quiet(err: Exception) -> None:
    """The fault test expects connection errors; keep them out of the log."""


async def test_each_commit_is_one_message_on_the_aggregates_subject(
    nats_client: Client, jetstream_config: JetStreamConfig, jetstream_store: JetStreamEventStore
):
    ref = device()
    await history(jetstream_store, ref, [3, 1, 2, 5])
    info = await nats_client.jetstream().stream_info(jetstream_config.stream, subjects_filter=">")
    assert info.state.messages == 4
    prefix = jetstream_config.subject_prefix
    assert info.state.subjects == {f"{prefix}.acme.device.{ref.id.hex}": 4}


async def test_concurrent_writers_at_one_version_let_exactly_one_win(
    nats_client: Client, jetstream_config: JetStreamConfig
):
    # Two stores stand for two processes, each with its own cache of heads.
    stores = [JetStreamEventStore(nats_client, jetstream_config) for _ in range(2)]
    ref = device()
    version = 0
    for _ in range(5):
        outcomes = await asyncio.gather(
            *(stores[n % 2].append(commit(ref, version, 1 + n % 3)) for n in range(50)),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, CommitResult)]
        losers = [o for o in outcomes if isinstance(o, ConcurrencyConflict)]
        assert len(winners) == 1 and len(losers) == 49, outcomes
        version = winners[0].version
        assert {loser.current_version for loser in losers} == {version}
        assert await stores[0].current_version(ref) == version
        assert (await stores[1].load(ref))[-1].version == version


async def test_a_stale_head_cache_is_caught_by_jetstream(
    nats_client: Client, jetstream_config: JetStreamConfig
):
    mine, theirs = (JetStreamEventStore(nats_client, jetstream_config) for _ in range(2))
    ref = device()
    await mine.append(commit(ref, 0))
    await theirs.append(commit(ref, 1))  # mine still believes the head is version 1
    with pytest.raises(ConcurrencyConflict) as conflict:
        await mine.append(commit(ref, 1))
    assert conflict.value.current_version == 2
    assert (await mine.append(commit(ref, 2))).version == 3


async def test_a_retry_at_the_current_version_is_answered_by_the_duplicate_window(
    jetstream_store: JetStreamEventStore,
):
    ref = device()
    await jetstream_store.append(commit(ref, 0))
    first = await jetstream_store.append(commit(ref, 1, key="inside-window"))
    # The caller re-decided on a fresh load that somehow missed its own commit:
    # only Nats-Msg-Id can tell, and it does while the window lasts.
    stale = JetStreamEventStore(jetstream_store._nc, jetstream_store.config)
    again = await stale.append(commit(ref, 1, key="inside-window"))
    assert again == CommitResult(ref, first.position, 2, 1, duplicate=True)
    assert await jetstream_store.current_version(ref) == 2


async def test_an_aggregate_with_thousands_of_commits_loads_whole_and_in_order(
    nats_client: Client, jetstream_config: JetStreamConfig
):
    store = JetStreamEventStore(nats_client, jetstream_config, load_batch=300)
    ref, neighbour = device(), device()
    for version in range(2000):
        await store.append(commit(ref, version))
        if version % 100 == 0:
            await store.append(commit(neighbour, version // 100))
    commits = await store.load(ref)
    assert [c.version for c in commits] == list(range(1, 2001))
    assert all(a.position < b.position for a, b in pairwise(commits))
    assert all(c.events[0].state == f"acme:{c.version}".encode() for c in commits)
    tail = await store.load(ref, after_version=1990)
    assert [c.version for c in tail] == list(range(1991, 2001))
    assert [c.version for c in await store.load(ref, up_to_version=3)] == [1, 2, 3]
    everything = await read_all(store)
    assert len(everything) == 2020
    assert [c.position for c in everything] == list(range(1, 2021))


async def test_ensure_jetstream_is_idempotent_and_data_survives_a_restart(tmp_path: Path):
    config = unique_jetstream_config()
    ref = device()
    async with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_jetstream(js, config)
        await ensure_jetstream(js, config)
        store = JetStreamEventStore(nc, config)
        written = await history(store, ref, [2, 1, 1])
        snapshots = await KeyValueSnapshotStore.open(js, config)
        record = SnapshotRecord(ref, 4, written[-1].position, "t:Snapshot", b"state")
        await snapshots.put(record)
        await nc.close()

        await server.stop()
        await server.start()

        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_jetstream(js, config)
        store = JetStreamEventStore(nc, config)
        assert [c.position for c in await store.load(ref)] == [r.position for r in written]
        assert await store.head_position() == written[-1].position
        assert await (await KeyValueSnapshotStore.open(js, config)).get(ref) == record
        assert (await store.append(commit(ref, 4))).version == 5
        await nc.close()


async def test_an_unreachable_server_is_reported_as_store_unavailable(tmp_path: Path):
    config = unique_jetstream_config()
    async with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url, max_reconnect_attempts=0, error_cb=_quiet)
        await ensure_jetstream(nc.jetstream(), config)
        store = JetStreamEventStore(nc, config, timeout=1.0)
        ref = StreamRef("acme", "device", uuid4())
        await store.append(commit(ref, 0))
        await server.kill()
        with pytest.raises(StoreUnavailable):
            await store.append(commit(ref, 1))
        with pytest.raises(StoreUnavailable):
            await store.load(ref)
        with contextlib.suppress(ConnectionResetError):  # nats-py flushing a dead socket
            await nc.close()


async def test_a_tenant_that_cannot_be_a_subject_token_is_rejected(
    jetstream_store: JetStreamEventStore,
):
    ref = StreamRef("acme.evil", "device", uuid4())
    with pytest.raises(InvalidCommit):
        await jetstream_store.append(commit(ref, 0))
    assert await jetstream_store.head_position() == 0
    assert await jetstream_store.load(ref) == []
    assert await jetstream_store.current_version(ref) == 0
