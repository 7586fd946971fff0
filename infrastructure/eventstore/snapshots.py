"""Snapshot port: a periodic picture of one aggregate, so loads read only the tail.

A snapshot also carries the aggregate's most recent idempotency keys, so a
retried command is still recognised after the commits holding those keys are
no longer read on load.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from infrastructure.eventstore.port import StreamRef


@dataclass(frozen=True, slots=True)
class KeyedCommit:
    """What an idempotent retry needs to answer: where the first commit landed."""

    position: int
    version: int
    event_count: int


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    ref: StreamRef
    version: int
    position: int  # position of the commit that produced ``version``
    topic: str  # mapper-encoded eventsourcing Snapshot: topic + state bytes
    state: bytes
    recent_keys: dict[str, KeyedCommit] = field(default_factory=dict)


class SnapshotStore(abc.ABC):
    @abc.abstractmethod
    async def get(self, ref: StreamRef) -> SnapshotRecord | None: ...

    @abc.abstractmethod
    async def put(self, record: SnapshotRecord) -> None:
        """Store ``record`` unless a newer snapshot of the aggregate is already there."""


class InMemorySnapshotStore(SnapshotStore):
    def __init__(self) -> None:
        self._records: dict[StreamRef, SnapshotRecord] = {}

    async def get(self, ref: StreamRef) -> SnapshotRecord | None:
        return self._records.get(ref)

    async def put(self, record: SnapshotRecord) -> None:
        current = self._records.get(record.ref)
        if current is None or current.version < record.version:
            self._records[record.ref] = record
