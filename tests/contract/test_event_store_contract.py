"""What every EventStore adapter promises, run against each adapter.

``EventStoreContract`` holds the tests; each subclass provides a ``store``.
The in-memory store is the reference; JetStream runs the same tests twice,
once with ``Nats-Msg-Id`` and once without, so retries after the duplicate
window are proven without waiting for the window to pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from nats.aio.client import Client

from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.memory import InMemoryEventStore
from infrastructure.eventstore.port import (
    CommitResult,
    ConcurrencyConflict,
    EventStore,
    InvalidCommit,
    NewCommit,
    RecordedCommit,
    StreamRef,
)
from infrastructure.eventstore.setup import JetStreamConfig

TOPIC = "tests.contract:SomethingHappened"


def device(tenant: str = "acme", id: UUID | None = None) -> StreamRef:
    return StreamRef(tenant, "device", id or uuid4())


def events(ref: StreamRef, after: int, count: int = 1) -> list[StoredEvent]:
    return [
        StoredEvent(ref.id, version, TOPIC, f"{ref.tenant}:{version}".encode())
        for version in range(after + 1, after + count + 1)
    ]


def commit(
    ref: StreamRef, expected: int, count: int = 1, *, key: str | None = None, **metadata: str
) -> NewCommit:
    return NewCommit(ref, expected, events(ref, expected, count), key, metadata)


async def history(store: EventStore, ref: StreamRef, sizes: Sequence[int]) -> list[CommitResult]:
    """Append commits of the given sizes to ``ref``, one after another."""
    results = []
    version = await store.current_version(ref)
    for size in sizes:
        result = await store.append(commit(ref, version, size))
        version = result.version
        results.append(result)
    return results


async def read_all(store: EventStore, from_position: int = 1) -> list[RecordedCommit]:
    return [c async for c in store.read_all(from_position)]


def versions(commits: Sequence[RecordedCommit]) -> list[list[int]]:
    return [[e.originator_version for e in c.events] for c in commits]


class EventStoreContract:
    @pytest.fixture
    def store(self) -> EventStore:
        raise NotImplementedError("each adapter's test class provides a store")

    # -- appending -------------------------------------------------------------------

    async def test_first_commit_starts_the_aggregate_at_version_one(self, store: EventStore):
        ref = device()
        result = await store.append(commit(ref, 0))
        assert (result.ref, result.version, result.event_count, result.duplicate) == (
            ref,
            1,
            1,
            False,
        )
        assert result.position == await store.head_position() >= 1

    async def test_each_commit_advances_the_version_by_its_event_count(self, store: EventStore):
        ref = device()
        results = await history(store, ref, [1, 3, 2])
        assert [(r.first_version, r.version) for r in results] == [(1, 1), (2, 4), (5, 6)]
        assert [r.position for r in results] == sorted({r.position for r in results})
        assert await store.current_version(ref) == 6

    async def test_a_commit_of_several_events_is_stored_whole_and_in_order(self, store: EventStore):
        ref = device()
        new = commit(ref, 0, 3)
        await store.append(new)
        [loaded] = await store.load(ref)
        assert loaded.events == tuple(new.events)
        assert (loaded.first_version, loaded.version) == (1, 3)

    async def test_a_stale_expected_version_conflicts_and_stores_nothing(self, store: EventStore):
        ref = device()
        await history(store, ref, [1, 1])
        head = await store.head_position()
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(commit(ref, 1, 2))
        assert (conflict.value.ref, conflict.value.expected_version) == (ref, 1)
        assert conflict.value.current_version == 2
        assert await store.head_position() == head
        assert versions(await store.load(ref)) == [[1], [2]]

    async def test_expecting_a_new_aggregate_conflicts_when_it_exists(self, store: EventStore):
        ref = device()
        await store.append(commit(ref, 0))
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(commit(ref, 0))
        assert conflict.value.current_version == 1

    async def test_expecting_a_version_the_aggregate_never_reached_conflicts(
        self, store: EventStore
    ):
        ref = device()
        await store.append(commit(ref, 0))
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(commit(ref, 5))
        assert conflict.value.current_version == 1
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(commit(device(), 3))
        assert conflict.value.current_version == 0

    @pytest.mark.parametrize(
        "malformed",
        [
            pytest.param(lambda ref: NewCommit(ref, 0, []), id="no events"),
            pytest.param(lambda ref: NewCommit(ref, -1, events(ref, -1)), id="negative version"),
            pytest.param(
                lambda ref: NewCommit(ref, 0, [*events(ref, 0), *events(ref, 2)]), id="a gap"
            ),
            pytest.param(lambda ref: NewCommit(ref, 0, events(ref, 1)), id="version skipped"),
            pytest.param(
                lambda ref: NewCommit(ref, 0, events(device(id=uuid4()), 0)),
                id="another aggregate's event",
            ),
        ],
    )
    async def test_a_malformed_commit_is_rejected_and_stores_nothing(
        self, store: EventStore, malformed
    ):
        ref = device()
        head = await store.head_position()
        with pytest.raises(InvalidCommit):
            await store.append(malformed(ref))
        assert await store.head_position() == head
        assert await store.current_version(ref) == 0

    async def test_metadata_and_key_come_back_exactly_as_given(self, store: EventStore):
        ref = device()
        metadata = {
            "actor": "operator@acme",
            "padded": "  spaces at both ends  ",
            "multi line": "one\r\ntwo",
            "percent%": "100% sure",
            "unicode": "Zürich → 東京",
            "empty": "",
        }
        key = " key with spaces, % and ü "
        await store.append(NewCommit(ref, 0, events(ref, 0), key, metadata))
        [loaded] = await store.load(ref)
        assert loaded.metadata == metadata
        assert loaded.idempotency_key == key

    # -- idempotency -----------------------------------------------------------------

    async def test_a_retried_commit_returns_the_first_result_and_stores_nothing(
        self, store: EventStore
    ):
        ref = device()
        first = await store.append(commit(ref, 0, 2, key="create-1"))
        head = await store.head_position()
        again = await store.append(commit(ref, 0, 2, key="create-1"))
        assert again == CommitResult(ref, first.position, 2, 2, duplicate=True)
        assert await store.head_position() == head
        assert versions(await store.load(ref)) == [[1, 2]]

    async def test_a_retry_after_the_aggregate_moved_on_still_returns_the_first_result(
        self, store: EventStore
    ):
        ref = device()
        await store.append(commit(ref, 0))
        first = await store.append(commit(ref, 1, 2, key="rename-7"))
        await history(store, ref, [1, 1, 1])
        head = await store.head_position()
        again = await store.append(commit(ref, 1, 2, key="rename-7"))
        assert again == CommitResult(ref, first.position, 3, 2, duplicate=True)
        assert await store.head_position() == head
        assert await store.current_version(ref) == 6

    async def test_a_retry_of_the_last_commit_returns_it(self, store: EventStore):
        ref = device()
        await history(store, ref, [1, 1])
        first = await store.append(commit(ref, 2, key="last"))
        again = await store.append(commit(ref, 2, key="last"))
        assert again == CommitResult(ref, first.position, 3, 1, duplicate=True)

    async def test_keys_belong_to_one_aggregate(self, store: EventStore):
        one, other = device(), device()
        first = await store.append(commit(one, 0, key="same"))
        second = await store.append(commit(other, 0, key="same"))
        assert not second.duplicate
        assert second.position > first.position

    async def test_a_new_key_on_a_moved_aggregate_is_a_conflict(self, store: EventStore):
        ref = device()
        await store.append(commit(ref, 0, key="first"))
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(commit(ref, 0, key="second"))
        assert conflict.value.current_version == 1

    # -- reading ---------------------------------------------------------------------

    async def test_load_returns_the_commits_touching_a_window_of_versions(self, store: EventStore):
        ref = device()
        await history(store, ref, [2, 1, 3])  # versions 1-2, 3, 4-6
        assert versions(await store.load(ref)) == [[1, 2], [3], [4, 5, 6]]
        assert versions(await store.load(ref, after_version=2)) == [[3], [4, 5, 6]]
        assert versions(await store.load(ref, after_version=4)) == [[4, 5, 6]]
        assert versions(await store.load(ref, after_version=6)) == []
        assert versions(await store.load(ref, up_to_version=3)) == [[1, 2], [3]]
        assert versions(await store.load(ref, up_to_version=1)) == [[1, 2]]
        assert versions(await store.load(ref, after_version=1, up_to_version=4)) == [
            [1, 2],
            [3],
            [4, 5, 6],
        ]

    async def test_load_can_start_after_a_known_position(self, store: EventStore):
        ref, other = device(), device()
        await history(store, ref, [2, 1])  # versions 1-2, 3
        interleaved = await store.append(commit(other, 0))
        await history(store, ref, [1])  # version 4
        second = (await store.load(ref))[1]
        assert versions(await store.load(ref, after_position=second.position)) == [[4]]
        assert versions(await store.load(ref, after_position=interleaved.position)) == [[4]]
        assert versions(await store.load(ref, after_version=3, after_position=0)) == [[4]]

    async def test_load_of_an_unknown_aggregate_is_empty(self, store: EventStore):
        assert await store.load(device()) == []

    async def test_read_all_returns_every_commit_in_global_order(self, store: EventStore):
        a, b, c = device(), device(), device("globex")
        start = await store.head_position() + 1
        r1 = await store.append(commit(a, 0))
        r2 = await store.append(commit(b, 0, 2, key="k", actor="ops"))
        r3 = await store.append(commit(a, 1))
        r4 = await store.append(commit(c, 0))
        everything = await read_all(store, start)
        assert [(x.ref, x.position) for x in everything] == [
            (a, r1.position),
            (b, r2.position),
            (a, r3.position),
            (c, r4.position),
        ]
        assert everything[1].events == tuple(events(b, 0, 2))
        assert (everything[1].idempotency_key, everything[1].metadata) == ("k", {"actor": "ops"})
        assert [x.position for x in await read_all(store, r3.position)] == [
            r3.position,
            r4.position,
        ]
        assert await read_all(store, r4.position + 1) == []

    async def test_read_all_stops_at_the_head_it_started_from(self, store: EventStore):
        ref = device()
        start = await store.head_position() + 1
        await history(store, ref, [1, 1])
        reader = store.read_all(start)
        first = await anext(reader)
        await store.append(commit(ref, 2))
        rest = [c async for c in reader]
        assert versions([first, *rest]) == [[1], [2]]

    async def test_head_position_is_the_last_commit(self, store: EventStore):
        before = await store.head_position()
        results = await history(store, device(), [1, 2])
        assert await store.head_position() == results[-1].position > before

    async def test_current_version_of_an_unknown_aggregate_is_zero(self, store: EventStore):
        assert await store.current_version(device()) == 0

    async def test_tenants_are_isolated_even_with_the_same_id(self, store: EventStore):
        shared = uuid4()
        acme, globex = device("acme", shared), device("globex", shared)
        await history(store, acme, [1, 1])
        result = await store.append(commit(globex, 0))
        assert result.version == 1
        assert await store.current_version(acme) == 2
        assert await store.current_version(globex) == 1
        assert [c.ref for c in await store.load(globex)] == [globex]
        assert [e.state for c in await store.load(acme) for e in c.events] == [
            b"acme:1",
            b"acme:2",
        ]


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> EventStore:
        return InMemoryEventStore()


@pytest.mark.integration
class TestJetStreamEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, jetstream_store: JetStreamEventStore) -> EventStore:
        return jetstream_store


@pytest.mark.integration
class TestJetStreamEventStoreWithoutMsgId(EventStoreContract):
    """Only the store's own key lookup answers retries: as after the duplicate window."""

    @pytest.fixture
    async def store(
        self, nats_client: Client, jetstream_config: JetStreamConfig
    ) -> AsyncIterator[EventStore]:
        store = JetStreamEventStore(nats_client, jetstream_config, use_msg_id=False)
        yield store
        await store.close()
