"""The event store port: what the write side needs from durable storage.

A *commit* is the unit of atomicity: the events one command produced for one
aggregate, stored together or not at all. Every commit gets a global
*position* (monotonic across the whole store) and advances its aggregate's
*version* by the number of events it carries.

Adapters: ``memory.InMemoryEventStore`` (unit tests, tools) and
``jetstream.JetStreamEventStore`` (everything else). Both pass the contract
tests in ``tests/contract/test_event_store_contract.py``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import StoredEvent


@dataclass(frozen=True, slots=True)
class StreamRef:
    """One aggregate's event stream: tenant, aggregate type and id."""

    tenant: str
    type: str
    id: UUID

    def __str__(self) -> str:
        return f"{self.tenant}/{self.type}/{self.id}"


@dataclass(frozen=True, slots=True)
class NewCommit:
    """Events to append to one aggregate, all or none.

    ``expected_version`` is the aggregate version the events were decided
    against (0 for a new aggregate). ``idempotency_key``, when given, makes the
    append idempotent per aggregate: a second commit with the same key returns
    the first commit's result and stores nothing, however much later it comes.
    """

    ref: StreamRef
    expected_version: int
    events: Sequence[StoredEvent]
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommitResult:
    ref: StreamRef
    position: int
    version: int
    event_count: int
    duplicate: bool = False  # True when an earlier commit with the same key answered

    @property
    def first_version(self) -> int:
        return self.version - self.event_count + 1


@dataclass(frozen=True, slots=True)
class RecordedCommit:
    """A commit as read back from the store."""

    ref: StreamRef
    position: int
    events: tuple[StoredEvent, ...]
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.events[-1].originator_version

    @property
    def first_version(self) -> int:
        return self.events[0].originator_version

    def result(self, *, duplicate: bool = False) -> CommitResult:
        return CommitResult(
            ref=self.ref,
            position=self.position,
            version=self.version,
            event_count=len(self.events),
            duplicate=duplicate,
        )


class EventStoreError(Exception):
    """Base for errors raised by event store adapters."""


class ConcurrencyConflict(EventStoreError):
    """The aggregate moved on since the events were decided."""

    def __init__(self, ref: StreamRef, expected_version: int, current_version: int) -> None:
        super().__init__(
            f"{ref}: expected version {expected_version}, current version is {current_version}"
        )
        self.ref = ref
        self.expected_version = expected_version
        self.current_version = current_version


class InvalidCommit(EventStoreError):
    """The commit itself is malformed (no events, versions not contiguous...)."""


class StoreUnavailable(EventStoreError):
    """The backing service could not be reached or did not answer in time."""


class EventStore(abc.ABC):
    """Async port for appending and reading commits."""

    @abc.abstractmethod
    async def append(self, commit: NewCommit) -> CommitResult:
        """Store ``commit`` atomically and return where it landed.

        Raises ``ConcurrencyConflict`` (carrying the current version) when the
        aggregate is not at ``commit.expected_version``. If the idempotency key
        was already used on this aggregate, returns that commit's result with
        ``duplicate=True`` and stores nothing.
        """

    @abc.abstractmethod
    async def load(
        self,
        ref: StreamRef,
        *,
        after_version: int = 0,
        up_to_version: int | None = None,
        after_position: int = 0,
    ) -> list[RecordedCommit]:
        """Commits of one aggregate in order, optionally a window of versions.

        A commit is included when any of its events falls in
        ``(after_version, up_to_version]``; callers drop the events outside.
        ``after_position`` says every commit at or before that position is
        already accounted for (a snapshot's position), so the store can start
        reading after it instead of at the aggregate's first commit.
        """

    @abc.abstractmethod
    def read_all(self, from_position: int = 1) -> AsyncIterator[RecordedCommit]:
        """Every commit from ``from_position`` up to the head at call time, in order."""

    @abc.abstractmethod
    async def head_position(self) -> int:
        """Position of the last commit in the store, 0 when empty."""

    @abc.abstractmethod
    async def current_version(self, ref: StreamRef) -> int:
        """The aggregate's version, 0 when it has no events."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""


def check_commit(commit: NewCommit) -> None:
    """Shared validation so every adapter rejects the same malformed commits."""
    if not commit.events:
        raise InvalidCommit(f"{commit.ref}: a commit needs at least one event")
    if commit.expected_version < 0:
        raise InvalidCommit(f"{commit.ref}: expected_version must be >= 0")
    for offset, event in enumerate(commit.events, start=1):
        if event.originator_version != commit.expected_version + offset:
            raise InvalidCommit(
                f"{commit.ref}: event {offset} has version {event.originator_version}, "
                f"expected {commit.expected_version + offset}"
            )
        if event.originator_id != commit.ref.id:
            raise InvalidCommit(f"{commit.ref}: event {offset} belongs to another aggregate")
