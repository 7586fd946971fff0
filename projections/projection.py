"""What a projection is: pure apply functions over envelopes, plus a thin writer.

``Projection`` is the contract the runner drives for every batch, in two steps:

* ``prepare`` folds the batch's envelopes into row changes in memory. It is
  pure computation, no I/O, so the runner prepares the next batch while the
  database is still writing this one;
* ``write`` lands the prepared changes inside the batch's transaction.

A projection owns a set of tables, addressed by canonical names, so a rebuild
can point the very same code at shadow copies. ``projections.rows`` has the
one-row-per-aggregate kind; ``projections.timeline`` the append-only one.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from infrastructure.database import json_dumps
from infrastructure.eventstore.port import StreamRef
from projections.envelope import BadCommit, Envelope, event_fields


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event (or a whole commit) a projection could not apply, kept for a human."""

    projection: str
    position: int
    ref: StreamRef
    version: int
    event_type: str
    error: str
    payload: str

    @classmethod
    def of_event(cls, projection: str, envelope: Envelope, error: BaseException) -> DeadLetter:
        try:
            payload = json_dumps(event_fields(envelope.event))
        except Exception:  # the event may be what is broken; keep what we can
            payload = repr(envelope.event.__dict__)
        return cls(
            projection=projection,
            position=envelope.position,
            ref=envelope.ref,
            version=envelope.version,
            event_type=f"{envelope.ref.type}.{envelope.event_type}",
            error=f"{type(error).__name__}: {error}",
            payload=payload,
        )

    @classmethod
    def of_commit(cls, projection: str, bad: BadCommit) -> DeadLetter:
        return cls(
            projection=projection,
            position=bad.position,
            ref=bad.ref,
            version=bad.version,
            event_type=bad.topic or f"{bad.ref.type}.?",
            error=bad.error,
            payload=bad.raw.hex(),
        )


@dataclass(slots=True)
class Touched:
    """The newest version and position of one aggregate a batch changed."""

    ref: StreamRef
    version: int
    position: int


@dataclass(slots=True)
class Outcome:
    """What one projection did with one batch."""

    applied: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    touched: list[Touched] = field(default_factory=list)


class Prepared(abc.ABC):
    """A projection's share of a batch, folded and ready to write."""

    outcome: Outcome


class Projection(abc.ABC):
    """A read model: a name, the aggregate types it reads and the tables it writes."""

    name: ClassVar[str]
    aggregate_types: ClassVar[frozenset[str]]
    table_names: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        tables: Mapping[str, sa.Table],
        *,
        label: str | None = None,
        dialect: str = "postgresql",
    ) -> None:
        missing = set(self.table_names) - set(tables)
        if missing:
            raise ValueError(f"{self.name}: no table given for {sorted(missing)}")
        self.tables = {name: tables[name] for name in self.table_names}
        # The name its checkpoint and dead letters go under: the projection's own,
        # or a rebuild's while it fills shadow tables.
        self.label = label or self.name
        self.dialect = dialect  # lets prepare() shape rows for the database's bulk path

    @abc.abstractmethod
    def prepare(
        self, envelopes: Sequence[Envelope], bad: Sequence[BadCommit], into: Prepared | None
    ) -> Prepared:
        """Fold part of a batch in memory (no I/O), adding to ``into`` when given.

        The runner feeds a batch in consecutive slices, so that a write in flight
        gets the event loop between two of them.
        """

    @abc.abstractmethod
    async def write(self, conn: AsyncConnection, prepared: Prepared) -> Outcome:
        """Write a prepared batch inside the caller's transaction."""
