"""In-memory event store: the port's reference behaviour, for unit tests and tools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from infrastructure.eventstore.port import (
    CommitResult,
    ConcurrencyConflict,
    EventStore,
    NewCommit,
    RecordedCommit,
    StreamRef,
    check_commit,
)


class InMemoryEventStore(EventStore):
    def __init__(self) -> None:
        self._log: list[RecordedCommit] = []
        self._streams: dict[StreamRef, list[RecordedCommit]] = {}
        self._keys: dict[tuple[StreamRef, str], RecordedCommit] = {}
        self._lock = asyncio.Lock()

    async def append(self, commit: NewCommit) -> CommitResult:
        check_commit(commit)
        async with self._lock:
            if commit.idempotency_key is not None:
                earlier = self._keys.get((commit.ref, commit.idempotency_key))
                if earlier is not None:
                    return earlier.result(duplicate=True)
            stream = self._streams.setdefault(commit.ref, [])
            current = stream[-1].version if stream else 0
            if current != commit.expected_version:
                raise ConcurrencyConflict(commit.ref, commit.expected_version, current)
            recorded = RecordedCommit(
                ref=commit.ref,
                position=len(self._log) + 1,
                events=tuple(commit.events),
                idempotency_key=commit.idempotency_key,
                metadata=dict(commit.metadata),
            )
            self._log.append(recorded)
            stream.append(recorded)
            if commit.idempotency_key is not None:
                self._keys[(commit.ref, commit.idempotency_key)] = recorded
            return recorded.result()

    async def load(
        self,
        ref: StreamRef,
        *,
        after_version: int = 0,
        up_to_version: int | None = None,
        after_position: int = 0,
    ) -> list[RecordedCommit]:
        return [
            c
            for c in self._streams.get(ref, [])
            if c.version > after_version
            and c.position > after_position
            and (up_to_version is None or c.first_version <= up_to_version)
        ]

    async def read_all(self, from_position: int = 1) -> AsyncIterator[RecordedCommit]:
        head = len(self._log)
        for commit in self._log[max(from_position, 1) - 1 : head]:
            yield commit

    async def head_position(self) -> int:
        return len(self._log)

    async def current_version(self, ref: StreamRef) -> int:
        stream = self._streams.get(ref)
        return stream[-1].version if stream else 0
