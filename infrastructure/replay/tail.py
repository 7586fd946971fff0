"""Following the event log: filters, "the last N events", and one record per event.

Tenant, aggregate type and id narrow the subject the server delivers; event
types are matched here, on the topic in the commit body, so filtering needs
no decryption. Only events that pass are decoded through the mapper.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from infrastructure.eventstore.port import StreamRef
from infrastructure.replay.describe import (
    event_actor,
    event_data,
    event_name,
    event_time,
    matches_event,
)
from infrastructure.replay.stream import (
    CorruptCommit,
    RawCommit,
    StreamReader,
    decode_commit,
    ref_of,
    subject_filter,
)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to show; ``None`` or empty means any."""

    tenant: str | None = None
    type: str | None = None
    id: UUID | None = None
    events: tuple[str, ...] = ()

    def subject(self, prefix: str) -> str:
        return subject_filter(prefix, self.tenant, self.type, self.id)

    def wants(self, item: TailedEvent) -> bool:
        # A corrupt commit has no topic; show it whatever the filter, it needs attention.
        return not self.events or item.error is not None or matches_event(item.topic, self.events)


@dataclass(frozen=True, slots=True)
class TailedEvent:
    """One event of the log, or one commit that could not be read (``error``)."""

    position: int
    recorded_at: datetime | None
    ref: StreamRef | None
    version: int
    topic: str
    stored: StoredEvent | None = None
    event: Any = None  # the domain event, once decoded
    error: str | None = None

    @property
    def name(self) -> str:
        return event_name(self.topic) if self.topic else "?"

    @property
    def occurred_at(self) -> datetime | None:
        return event_time(self.event) if self.event is not None else None

    @property
    def actor(self) -> str | None:
        return event_actor(self.event) if self.event is not None else None

    def decoded(self, mapper: Mapper[UUID]) -> TailedEvent:
        if self.stored is None or self.event is not None:
            return self
        try:
            event = mapper.to_domain_event(self.stored)
        except Exception as err:  # any codec, cipher or topic failure
            return dataclasses.replace(self, error=f"cannot decode event: {err!r}")
        return dataclasses.replace(self, event=event)

    def as_json(self) -> dict[str, Any]:
        ref = self.ref
        return {
            "position": self.position,
            "recorded_at": self.recorded_at,
            "occurred_at": self.occurred_at,
            "tenant": ref.tenant if ref else None,
            "type": ref.type if ref else None,
            "id": ref.id if ref else None,
            "version": self.version,
            "event": self.name,
            "topic": self.topic,
            "actor": self.actor,
            "data": event_data(self.event) if self.event is not None else None,
            "error": self.error,
        }


def split(prefix: str, raw: RawCommit) -> list[TailedEvent]:
    """The events of one message, undecoded; a single error record if it is not a commit."""
    try:
        commit = decode_commit(prefix, raw)
    except CorruptCommit as err:
        ref = ref_of(prefix, raw.subject)
        return [TailedEvent(raw.position, raw.recorded_at, ref, 0, "", error=err.reason)]
    return [
        TailedEvent(raw.position, raw.recorded_at, commit.ref, e.originator_version, e.topic, e)
        for e in commit.events
    ]


async def tail(
    reader: StreamReader,
    mapper: Mapper[UUID],
    where: EventFilter,
    *,
    start: int,
    skip: int = 0,
    until: int | None = None,
    limit: int | None = None,
) -> AsyncGenerator[TailedEvent, None]:
    """Matching events from ``start``, decoded; follows live unless ``until`` is given.

    ``skip`` drops that many matching events first (see ``start_of_last``);
    ``limit`` stops after that many.
    """
    if limit is not None and limit <= 0:
        return
    shown = 0
    async with contextlib.aclosing(reader.read(where.subject(reader.prefix), start, until)) as raws:
        async for raw in raws:
            for item in split(reader.prefix, raw):
                if not where.wants(item):
                    continue
                if skip:
                    skip -= 1
                    continue
                yield item.decoded(mapper)
                shown += 1
                if limit is not None and shown >= limit:
                    return


async def start_of_last(
    reader: StreamReader, where: EventFilter, count: int, head: int
) -> tuple[int, int]:
    """Where to start, and how many matching events to skip, to show the last ``count``.

    Counts backwards from ``head`` in growing windows, so a busy log is not
    read from the beginning to find its last few events.
    """
    if count <= 0 or head <= 0:
        return head + 1, 0
    subject = where.subject(reader.prefix)
    end, window, found = head, max(4 * count, 256), 0
    start = head + 1
    while end >= 1:
        start = max(1, end - window + 1)
        async with contextlib.aclosing(reader.read(subject, start, end)) as raws:
            async for raw in raws:
                found += sum(1 for item in split(reader.prefix, raw) if where.wants(item))
        if found >= count:
            break
        end, window = start - 1, window * 4
    return start, max(0, found - count)
