"""events(): history replayed from the store, then the live feed, with no gap and no duplicate.

Positions are the store's commit positions. The live feed (one per process,
``feed.JetStreamLiveFeed``) calls ``LiveEvents.dispatch`` for every commit in
position order; ``position`` is the last one it dispatched. A subscription
starting ``after`` position P keeps ``covered``, the position up to which it
has delivered every commit it wants:

1. While the feed has dispatched past ``covered``, replay from the store
   (``covered + 1`` onwards): every commit the feed had dispatched when the
   pass began is in it, so ``covered`` ends at least there.
2. Once the feed has not dispatched past ``covered``, the watch is registered
   *in the same step, with no await in between*: every commit the feed
   dispatches from then on reaches it, and those at or below ``covered``
   (replayed already, or older than ``after``) are skipped.

A subscription at the head needs no store read at all, so a crowd reconnecting
at once costs the store nothing. Every commit is decoded at most once per
process, however many subscriptions want it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, cast
from uuid import UUID

from eventsourcing.persistence import Mapper

from infrastructure.eventstore.port import EventStore, RecordedCommit

log = logging.getLogger(__name__)

_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "actor"})


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as subscribers see it."""

    position: int
    aggregate_type: str
    aggregate_id: UUID
    version: int
    type: str  # event class name, e.g. "AnomalyRaised" (as in the timeline table)
    actor: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventFilter:
    tenant: str
    aggregate_type: str | None = None
    aggregate_id: UUID | None = None
    event_types: frozenset[str] | None = None

    def wants(self, commit: RecordedCommit) -> bool:
        ref = commit.ref
        return (
            ref.tenant == self.tenant
            and (self.aggregate_type is None or ref.type == self.aggregate_type)
            and (self.aggregate_id is None or ref.id == self.aggregate_id)
        )

    def select(self, records: list[EventRecord]) -> list[EventRecord]:
        if self.event_types is None:
            return records
        return [r for r in records if r.type in self.event_types]


class SlowSubscription(Exception):
    """The subscription fell further behind the live feed than its queue allows."""


def json_value(value: Any) -> Any:
    """Event field values as JSON: UUIDs and decimals as strings, times in ISO 8601."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def to_records(mapper: Mapper[UUID], commit: RecordedCommit) -> list[EventRecord]:
    records = []
    for stored in commit.events:
        event = cast(Any, mapper.to_domain_event(stored))
        fields = {k: json_value(v) for k, v in vars(event).items() if k not in _ENVELOPE}
        records.append(
            EventRecord(
                position=commit.position,
                aggregate_type=commit.ref.type,
                aggregate_id=commit.ref.id,
                version=event.originator_version,
                type=type(event).__name__,
                actor=str(getattr(event, "actor", "")),
                occurred_at=event.timestamp,
                data=fields,
            )
        )
    return records


class _Watch:
    """A live subscription's queue of commits, bounded."""

    def __init__(self, flt: EventFilter, covered: int, capacity: int) -> None:
        self.filter = flt
        self.covered = covered
        self.capacity = capacity
        self.commits: deque[_Decoded] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False

    def offer(self, commit: _Decoded) -> None:
        if self.overflowed:
            return
        if len(self.commits) >= self.capacity:
            self.overflowed = True
            self.commits.clear()
        else:
            self.commits.append(commit)
        self.wake.set()


class _Decoded:
    """A live commit, decoded on first demand and shared by every watch."""

    __slots__ = ("_records", "commit", "mapper")

    def __init__(self, commit: RecordedCommit, mapper: Mapper[UUID]) -> None:
        self.commit = commit
        self.mapper = mapper
        self._records: list[EventRecord] | None = None

    def records(self) -> list[EventRecord]:
        if self._records is None:
            self._records = to_records(self.mapper, self.commit)
        return self._records


class Demand(Protocol):
    """What feeds ``dispatch``, started while subscriptions need it (``feed.JetStreamLiveFeed``)."""

    async def acquire(self) -> None: ...

    def release(self) -> None: ...


Replay = Callable[[EventFilter, int], AsyncGenerator[RecordedCommit, None]]
"""Commits from a position up to (at least) the head at call time, in order; every one
``EventFilter`` wants is among them (others may be too: the stream filters again)."""


class LiveEvents:
    """Replay-then-live event streams, fed by one live feed per process.

    ``replay`` defaults to the store's ``read_all`` (every commit of every
    tenant); the JetStream hub passes a subject-filtered reader instead, and
    its live feed as ``demand``: each stream holds it from before it reads
    ``position`` until it ends.
    """

    demand: Demand | None = None

    def __init__(
        self,
        store: EventStore,
        mapper: Mapper[UUID],
        *,
        queue_size: int = 10_000,
        replay: Replay | None = None,
    ) -> None:
        self._store = store
        self._replay = replay or self._read_all
        self._mapper = mapper
        self._queue_size = queue_size
        self._watches: dict[str, set[_Watch]] = {}  # by tenant
        self.position = 0  # last position the live feed dispatched

    def dispatch(self, commit: RecordedCommit) -> None:
        """Called by the live feed for every commit, in position order."""
        watches = self._watches.get(commit.ref.tenant)
        if watches:
            decoded = _Decoded(commit, self._mapper)
            for watch in watches:
                if watch.filter.wants(commit):
                    watch.offer(decoded)
        self.position = commit.position

    @property
    def watch_count(self) -> int:
        return sum(len(w) for w in self._watches.values())

    async def stream(
        self, flt: EventFilter, after: int, *, on_live: Callable[[], None] | None = None
    ) -> AsyncGenerator[list[EventRecord], None]:
        """The events of each commit after ``after`` that ``flt`` wants, then live, forever.

        ``on_live`` is called once the replay is over and the live feed reaches the stream.
        """
        demand = self.demand
        if demand is not None:
            await demand.acquire()  # position is live from here on
        try:
            async with contextlib.aclosing(self._stream(flt, after, on_live)) as stream:
                async for records in stream:
                    yield records
        finally:
            if demand is not None:
                demand.release()

    async def _stream(
        self, flt: EventFilter, after: int, on_live: Callable[[], None] | None
    ) -> AsyncGenerator[list[EventRecord], None]:
        covered = max(after, 0)
        while self.position > covered:
            reached = self.position  # all committed before this replay starts
            async with contextlib.aclosing(self._replay(flt, covered + 1)) as commits:
                async for commit in commits:
                    covered = commit.position
                    if flt.wants(commit) and (records := flt.select(self._records(commit))):
                        yield records
            covered = max(covered, reached)
        # No await from the check above until the watch is registered: nothing slips between.
        watch = _Watch(flt, covered, self._queue_size)
        watches = self._watches.setdefault(flt.tenant, set())
        watches.add(watch)
        if on_live is not None:
            on_live()
        try:
            while True:
                await watch.wake.wait()
                watch.wake.clear()
                if watch.overflowed:
                    raise SlowSubscription(
                        f"more than {watch.capacity} commits behind the live feed "
                        f"after position {watch.covered}"
                    )
                while watch.commits:
                    decoded = watch.commits.popleft()
                    if decoded.commit.position <= watch.covered:
                        continue  # replay already delivered it
                    watch.covered = decoded.commit.position
                    if records := flt.select(decoded.records()):
                        yield records
        finally:
            watches.discard(watch)
            if not watches and self._watches.get(flt.tenant) is watches:
                del self._watches[flt.tenant]

    def _read_all(self, flt: EventFilter, start: int) -> AsyncGenerator[RecordedCommit, None]:
        return cast(AsyncGenerator[RecordedCommit, None], self._store.read_all(start))

    def _records(self, commit: RecordedCommit) -> list[EventRecord]:
        return to_records(self._mapper, commit)
