"""An aggregate as it was at a version or a time, with the events that made it so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper

from domain import Device, Fleet, Model
from domain.base import VigilAggregate
from infrastructure.eventstore.port import EventStore, EventStoreError, StreamRef
from infrastructure.replay.describe import (
    aggregate_state,
    event_actor,
    event_data,
    event_name,
    event_time,
)
from infrastructure.repository import Repository

AGGREGATE_TYPES: dict[str, type[VigilAggregate]] = {cls.TYPE: cls for cls in (Device, Fleet, Model)}


class ReplayFailed(Exception):
    """The aggregate's events cannot be decoded and applied."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    position: int
    version: int
    name: str
    occurred_at: datetime | None
    actor: str | None
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "version": self.version,
            "event": self.name,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class AsOf:
    """What ``aggregate_as_of`` found: the state (None before it existed) and its events."""

    ref: StreamRef
    aggregate: VigilAggregate | None
    history: list[HistoryEntry]
    current_version: int  # the aggregate's version now, for context

    @property
    def state(self) -> dict[str, Any] | None:
        return aggregate_state(self.aggregate) if self.aggregate is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.ref.tenant,
            "type": self.ref.type,
            "id": self.ref.id,
            "version": self.aggregate.version if self.aggregate is not None else 0,
            "current_version": self.current_version,
            "state": self.state,
            "history": [entry.as_json() for entry in self.history],
        }


async def aggregate_as_of(
    store: EventStore,
    mapper: Mapper[UUID],
    ref: StreamRef,
    *,
    version: int | None = None,
    at: datetime | None = None,
) -> AsOf:
    """Rebuild ``ref`` from its events up to ``version`` and/or time ``at`` (whichever first).

    The state comes from ``Repository.load_as_of`` (the time travel the API
    uses); the history is the events up to the version that state reached.
    """
    current = await store.current_version(ref)
    try:
        aggregate = await Repository(store, mapper).load_as_of(ref, version=version, at=at)
        reached = aggregate.version if aggregate is not None else 0
        history: list[HistoryEntry] = []
        commits = await store.load(ref, up_to_version=reached) if reached else []
        for commit in commits:
            for stored in commit.events:
                if stored.originator_version <= reached:
                    event = mapper.to_domain_event(stored)
                    history.append(_entry(commit.position, stored.topic, event))
    except EventStoreError:
        raise
    except Exception as err:  # codec, cipher or topic: the log cannot be replayed as it is
        raise ReplayFailed(
            f"{ref} cannot be rebuilt: {err!r}; are VIGIL_EVENT_COMPRESSION and "
            "VIGIL_CIPHER_KEY set as they were when it was written? "
            "(`vigil events verify` lists every bad commit)"
        ) from err
    return AsOf(ref, aggregate, history, current)


def _entry(position: int, topic: str, event: Any) -> HistoryEntry:
    return HistoryEntry(
        position=position,
        version=event.originator_version,
        name=event_name(topic),
        occurred_at=event_time(event),
        actor=event_actor(event),
        data=event_data(event),
    )
