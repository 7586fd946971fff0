"""Aggregate repository: turns commits into aggregates and decided events into commits.

Three things make commands cheap and safe here:

* a bounded LRU of hot aggregates, so a command on a cached aggregate costs no
  read at all;
* snapshots every ``snapshot_every`` events, so a cold load reads only the tail;
* a per-aggregate lock, so commands on one aggregate inside one process run one
  after another instead of racing each other into conflicts.

Each loaded aggregate remembers the idempotency keys of its recent commits
(carried across snapshots), which is how a retried command is recognised long
after JetStream's duplicate window has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from domain.base import VigilAggregate
from infrastructure.eventstore.port import CommitResult, EventStore, NewCommit, StreamRef
from infrastructure.eventstore.snapshots import KeyedCommit, SnapshotRecord, SnapshotStore

log = logging.getLogger(__name__)

_Key = tuple[str, str, int]


def _key(ref: StreamRef) -> _Key:
    """``ref`` as a dict key: a tuple hashes cheaply, the dataclass and its UUID do not."""
    return (ref.tenant, ref.type, ref.id.int)


class _Turn:
    """One command's turn on an aggregate: ``async with`` waits for it, leaving ends it.

    The lock lives in the table only while someone holds it or waits for it,
    so the table needs no weak references and no sweeping.
    """

    __slots__ = ("_entry", "_key", "_locks")

    def __init__(self, locks: dict[_Key, list[Any]], key: _Key) -> None:
        self._locks = locks
        self._key = key
        self._entry: list[Any] = []

    async def __aenter__(self) -> None:
        entry = self._locks.get(self._key)
        if entry is None:
            entry = self._locks[self._key] = [asyncio.Lock(), 0]
        self._entry = entry
        entry[1] += 1
        try:
            await entry[0].acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._entry[0].release()
        self._leave()

    def _leave(self) -> None:
        entry = self._entry
        entry[1] -= 1
        if entry[1] == 0 and self._locks.get(self._key) is entry:
            del self._locks[self._key]


@dataclass(slots=True)
class Loaded:
    """An aggregate as of its latest commit, with what retries need to be answered."""

    ref: StreamRef
    aggregate: VigilAggregate | None
    version: int = 0
    position: int = 0
    recent_keys: OrderedDict[str, KeyedCommit] = field(default_factory=OrderedDict)

    def keyed(self, key: str) -> CommitResult | None:
        hit = self.recent_keys.get(key)
        if hit is None:
            return None
        return CommitResult(
            ref=self.ref,
            position=hit.position,
            version=hit.version,
            event_count=hit.event_count,
            duplicate=True,
        )


class Repository:
    def __init__(
        self,
        store: EventStore,
        mapper: Mapper[UUID],
        snapshots: SnapshotStore | None = None,
        *,
        snapshot_every: int = 50,
        cache_size: int = 10_000,
        keys_kept: int = 256,
    ) -> None:
        self.store = store
        self.mapper = mapper
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self.cache_size = cache_size
        self.keys_kept = keys_kept
        self._cache: OrderedDict[_Key, Loaded] = OrderedDict()
        self._locks: dict[_Key, list[Any]] = {}  # key -> [lock, holders and waiters]
        self._background: set[asyncio.Task[None]] = set()

    def lock(self, ref: StreamRef) -> _Turn:
        """``async with repository.lock(ref)``: serialises commands on ``ref`` in this process."""
        return _Turn(self._locks, (ref.tenant, ref.type, ref.id.int))

    def evict(self, ref: StreamRef) -> None:
        """Forget the cached aggregate, e.g. after a failed command may have mutated it."""
        self._cache.pop(_key(ref), None)

    async def load(self, ref: StreamRef) -> Loaded:
        key = (ref.tenant, ref.type, ref.id.int)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        loaded = await self._load_from_store(ref)
        if loaded.aggregate is not None:
            self._remember(loaded)
        return loaded

    async def save(
        self,
        loaded: Loaded,
        events: Sequence[Any],
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CommitResult:
        """Append ``events`` decided on ``loaded`` and keep the cache in step.

        On any failure the cached aggregate is evicted: the domain already
        applied the events to it, so it may be ahead of the store.
        """
        ref = loaded.ref
        stored = [self.mapper.to_stored_event(event) for event in events]
        commit = NewCommit(
            ref=ref,
            expected_version=loaded.version,
            events=stored,
            idempotency_key=idempotency_key,
            metadata=metadata or {},
        )
        try:
            result = await self.store.append(commit)
        except BaseException:
            self.evict(ref)
            raise
        if result.duplicate:
            # Someone else's commit answered; our in-memory copy is not what was stored.
            self.evict(ref)
            return result
        previous_version = loaded.version
        loaded.version = result.version
        loaded.position = result.position
        if idempotency_key is not None:
            self._remember_key(loaded, idempotency_key, result)
        if loaded.aggregate is not None:
            self._remember(loaded)
            if self.snapshots is not None and self._crossed_snapshot(previous_version, result):
                self._snapshot_in_background(loaded)
        return result

    async def load_as_of(
        self, ref: StreamRef, *, version: int | None = None, at: datetime | None = None
    ) -> VigilAggregate | None:
        """The aggregate as it was at ``version`` or at time ``at`` (time travel).

        Always rebuilt from the events, never from a snapshot, so what you see
        is exactly what the log says.
        """
        commits = await self.store.load(ref, up_to_version=version)
        aggregate: VigilAggregate | None = None
        for commit in commits:
            for stored in commit.events:
                if version is not None and stored.originator_version > version:
                    return aggregate
                event = self.mapper.to_domain_event(stored)
                if at is not None and event.timestamp > at:  # type: ignore[attr-defined]
                    return aggregate
                aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
        return aggregate

    async def drain(self) -> None:
        """Wait for background snapshot writes (used on shutdown and in tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _load_from_store(self, ref: StreamRef) -> Loaded:
        loaded = Loaded(ref=ref, aggregate=None)
        if self.snapshots is not None:
            record = await self.snapshots.get(ref)
            if record is not None:
                snapshot = self.mapper.to_domain_event(
                    StoredEvent(ref.id, record.version, record.topic, record.state)
                )
                loaded.aggregate = snapshot.mutate(None)  # type: ignore[attr-defined]
                loaded.version = record.version
                loaded.position = record.position
                loaded.recent_keys = OrderedDict(record.recent_keys)
        commits = await self.store.load(
            ref, after_version=loaded.version, after_position=loaded.position
        )
        aggregate = loaded.aggregate
        for commit in commits:
            for stored in commit.events:
                if stored.originator_version <= loaded.version:
                    continue
                event = self.mapper.to_domain_event(stored)
                aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
            loaded.version = commit.version
            loaded.position = commit.position
            if commit.idempotency_key is not None:
                self._remember_key(loaded, commit.idempotency_key, commit.result())
        loaded.aggregate = aggregate
        return loaded

    def _remember(self, loaded: Loaded) -> None:
        cache = self._cache
        key = _key(loaded.ref)
        cache[key] = loaded
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _remember_key(self, loaded: Loaded, key: str, result: CommitResult) -> None:
        loaded.recent_keys[key] = KeyedCommit(result.position, result.version, result.event_count)
        loaded.recent_keys.move_to_end(key)
        while len(loaded.recent_keys) > self.keys_kept:
            loaded.recent_keys.popitem(last=False)

    def _crossed_snapshot(self, previous_version: int, result: CommitResult) -> bool:
        every = self.snapshot_every
        return every > 0 and previous_version // every != result.version // every

    def _snapshot_in_background(self, loaded: Loaded) -> None:
        assert loaded.aggregate is not None and self.snapshots is not None
        # Encode now: the cached aggregate may change before the write runs.
        snapshot = type(loaded.aggregate).Snapshot.take(loaded.aggregate)
        stored = self.mapper.to_stored_event(snapshot)
        record = SnapshotRecord(
            ref=loaded.ref,
            version=loaded.version,
            position=loaded.position,
            topic=stored.topic,
            state=stored.state,
            recent_keys=dict(loaded.recent_keys),
        )
        task = asyncio.get_running_loop().create_task(self._write_snapshot(record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_snapshot(self, record: SnapshotRecord) -> None:
        assert self.snapshots is not None
        try:
            await self.snapshots.put(record)
        except Exception:
            # A missing snapshot only costs a longer load next time.
            log.warning(
                "snapshot of %s at version %d failed", record.ref, record.version, exc_info=True
            )
