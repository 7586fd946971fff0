"""What a projection is: pure apply functions over envelopes, plus a thin writer.

``Projection`` is the contract the runner drives, once per batch and inside
the batch's transaction: ``apply`` folds the batch's envelopes into row
changes and writes them; after the commit, ``committed`` lets the projection
remember what it wrote. A projection owns a set of tables, addressed by their
canonical names, so a rebuild can point the very same code at shadow copies.

``RowProjection`` is the shape of the devices, fleets and models read models:
one row per aggregate, last write wins. Its apply functions read the row as it
stands and an event and return the columns the event changes; they never read
the clock, random numbers or the database (invariant 5), so the same events
always give the same rows. An event whose apply function raises (or that has
none) is parked as a dead letter and the row stays as it was before it.

Rows are kept in a bounded in-memory cache between batches. That is sound
because one projector at a time writes a projection's tables (see
``projections.lease``) and the cache is only updated after a commit; when a
rebuild swaps new tables in, the checkpoint's ``generation`` changes and the
runner calls ``reset``. A row not cached is read from the database, unless the
batch holds the aggregate's first event, in which case there is nothing to
read: that is what makes catch-up from position 0 cheap.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from infrastructure.eventstore.port import StreamRef
from projections import bulk
from projections.envelope import BadCommit, Envelope, event_fields

Row = dict[str, Any]
Changes = dict[str, Any]
Apply = Callable[[Mapping[str, Any], Any], Changes]


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
            payload = orjson.dumps(event_fields(envelope.event)).decode()
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
    """What one projection did with one batch; ``state`` is its own, for ``committed``."""

    applied: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    touched: list[Touched] = field(default_factory=list)
    state: Any = None


class Projection(abc.ABC):
    """A read model: a name, the aggregate types it reads and the tables it writes."""

    name: ClassVar[str]
    aggregate_types: ClassVar[frozenset[str]]
    table_names: ClassVar[tuple[str, ...]]

    def __init__(self, tables: Mapping[str, sa.Table], *, label: str | None = None) -> None:
        missing = set(self.table_names) - set(tables)
        if missing:
            raise ValueError(f"{self.name}: no table given for {sorted(missing)}")
        self.tables = {name: tables[name] for name in self.table_names}
        # The name its checkpoint and dead letters go under: the projection's own,
        # or a rebuild's while it fills shadow tables.
        self.label = label or self.name

    @abc.abstractmethod
    async def apply(
        self, conn: AsyncConnection, envelopes: Sequence[Envelope], bad: Sequence[BadCommit]
    ) -> Outcome:
        """Fold and write one batch inside the caller's transaction."""

    def committed(self, outcome: Outcome) -> None:  # noqa: B027 - optional hook
        """The batch's transaction committed: remember what it wrote."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget anything remembered: the tables were replaced under us."""


class RowProjection(Projection):
    """One row per aggregate in ``table_names[0]``, folded by ``applies``."""

    applies: ClassVar[Mapping[type, Apply]]
    creates: ClassVar[frozenset[type]]  # the events that start a row
    cache_size: int = 100_000

    def __init__(
        self,
        tables: Mapping[str, sa.Table],
        *,
        label: str | None = None,
        cache_size: int | None = None,
    ) -> None:
        super().__init__(tables, label=label)
        self.table = self.tables[self.table_names[0]]
        if cache_size is not None:
            self.cache_size = cache_size
        self._cache: dict[tuple[str, Any], Row] = {}

    async def apply(
        self, conn: AsyncConnection, envelopes: Sequence[Envelope], bad: Sequence[BadCommit]
    ) -> Outcome:
        by_aggregate = group_by_aggregate(envelopes)
        prior = await self._prior_rows(conn, by_aggregate)
        outcome = Outcome(dead_letters=[DeadLetter.of_commit(self.label, b) for b in bad])
        rows: dict[tuple[str, Any], Row] = {}
        for key, events in by_aggregate.items():
            row = prior.get(key)
            new, applied = self.fold(row, events, outcome.dead_letters)
            outcome.applied += applied
            if new is not None and new is not row:
                rows[key] = new
                outcome.touched.append(Touched(events[0].ref, new["version"], new["position"]))
        await self.write(conn, prior, rows)
        outcome.state = rows
        return outcome

    def fold(
        self, row: Row | None, events: Iterable[Envelope], dead_letters: list[DeadLetter]
    ) -> tuple[Row | None, int]:
        """Apply ``events`` of one aggregate to its row; failures become dead letters."""
        applied = 0
        for envelope in events:
            event = envelope.event
            try:
                apply = self.applies.get(type(event))
                if apply is None:
                    raise LookupError(f"{self.name} has no apply function for this event")
                if row is None:
                    if type(event) not in self.creates:
                        raise LookupError("no row yet: the aggregate's first event was not applied")
                    base: Row = self.new_row(envelope)
                else:
                    base = row
                changes = apply(base, event)
            except Exception as err:
                dead_letters.append(DeadLetter.of_event(self.label, envelope, err))
                continue
            row = {
                **base,
                **changes,
                "version": event.originator_version,
                "position": envelope.position,
                "updated_at": event.timestamp,
            }
            applied += 1
        return row, applied

    def new_row(self, envelope: Envelope) -> Row:
        ref = envelope.ref
        return {"tenant_id": ref.tenant, "id": ref.id, "created_at": envelope.event.timestamp}

    async def write(
        self,
        conn: AsyncConnection,
        prior: Mapping[tuple[str, Any], Row],
        rows: Mapping[tuple[str, Any], Row],
    ) -> None:
        """The thin writer: upsert every changed row in one statement."""
        await bulk.upsert(conn, self.table, list(rows.values()))

    def committed(self, outcome: Outcome) -> None:
        cache = self._cache
        for key, row in outcome.state.items():
            cache.pop(key, None)
            cache[key] = row  # most recently written last
        while len(cache) > self.cache_size:
            del cache[next(iter(cache))]

    def reset(self) -> None:
        self._cache.clear()

    async def _prior_rows(
        self, conn: AsyncConnection, by_aggregate: Mapping[tuple[str, Any], list[Envelope]]
    ) -> dict[tuple[str, Any], Row]:
        cache = self._cache
        prior: dict[tuple[str, Any], Row] = {}
        wanted: list[tuple[str, Any]] = []
        for key, events in by_aggregate.items():
            row = cache.get(key)
            if row is not None:
                prior[key] = row
            elif events[0].version > 1:  # not born in this batch: it may have a row
                wanted.append(key)
        if wanted:
            for row in await bulk.fetch_rows(conn, self.table, wanted):
                prior[(row["tenant_id"], row["id"])] = row
        return prior


def group_by_aggregate(envelopes: Iterable[Envelope]) -> dict[tuple[str, Any], list[Envelope]]:
    """Envelopes per (tenant, aggregate id), each list in stream order."""
    groups: dict[tuple[str, Any], list[Envelope]] = {}
    for envelope in envelopes:
        key = (envelope.ref.tenant, envelope.ref.id)
        events = groups.get(key)
        if events is None:
            groups[key] = [envelope]
        else:
            events.append(envelope)
    return groups
