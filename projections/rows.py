"""One row per aggregate, last write wins: how the devices, fleets and models read models work.

A ``RowProjection``'s apply functions read the row as it stands and an event
and return the columns the event changes; they never read the clock, random
numbers or the database (invariant 5), so the same events always give the
same rows. An event whose apply function raises (or that has none) is parked
as a dead letter and the row stays as it was before it.

Rows are kept in a bounded in-memory cache, updated as batches are prepared.
That is sound because one projector at a time writes a projection's tables
(``projections.lease``), batches are written in the order they are prepared,
and any failure or table swap throws the projection instance away (the
runner starts a fresh session from the checkpoints). A row neither cached nor
born in the batch is read from the database at write time, after every
earlier batch has committed: that read sees exactly the rows those batches
left. Until then later batches defer that aggregate too.

A batch copies a row the first time one of its slices changes it, and later
slices of the same batch fold into that copy in place: the rows of earlier
batches, which may still be being written, are never changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from infrastructure.eventstore.port import StreamRef
from projections import bulk
from projections.envelope import BadCommit, Envelope
from projections.projection import DeadLetter, Outcome, Prepared, Projection, Touched

Row = dict[str, Any]
Changes = dict[str, Any]
Apply = Callable[[Mapping[str, Any], Any], Changes]


@dataclass(slots=True)
class _RowBatch(Prepared):
    outcome: Outcome
    before: dict[str, Row | None] = field(default_factory=dict)  # key -> row before the batch
    # key -> row after the batch: the batch's own copy, which later slices of the
    # batch fold into in place (no earlier batch and no cache entry of theirs holds it)
    rows: dict[str, Row] = field(default_factory=dict)
    refs: dict[str, StreamRef] = field(default_factory=dict)  # key -> aggregate, for notices
    deferred: dict[str, list[Envelope]] = field(default_factory=dict)  # rows to read first


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
        dialect: str = "postgresql",
        cache_size: int | None = None,
    ) -> None:
        super().__init__(tables, label=label, dialect=dialect)
        self.table = self.tables[self.table_names[0]]
        if cache_size is not None:
            self.cache_size = cache_size
        self._cache: dict[str, Row] = {}  # aggregate key -> latest row
        # Keys some prepared, unwritten batch defers: until its write folds them, the
        # cache may hold an older row for them, so later batches must defer them too.
        self._awaiting: dict[str, int] = {}

    def prepare(
        self, envelopes: Sequence[Envelope], bad: Sequence[BadCommit], into: Prepared | None
    ) -> _RowBatch:
        batch = into if isinstance(into, _RowBatch) else _RowBatch(Outcome())
        batch.outcome.dead_letters.extend(DeadLetter.of_commit(self.label, b) for b in bad)
        cache = self._cache
        deferred = batch.deferred
        awaiting = self._awaiting
        own = batch.rows
        outcome = batch.outcome
        for key, events in group_by_aggregate(envelopes).items():
            if key in awaiting:  # earlier events of it wait for their row: these wait behind
                if key in deferred:
                    deferred[key].extend(events)
                else:
                    deferred[key] = events
                    awaiting[key] += 1
                continue
            row = own.get(key)
            if row is not None:  # an earlier slice of this batch made its copy: fold into it
                outcome.applied += self.fold(row, events, outcome.dead_letters, owned=True)[1]
                continue
            row = cache.get(key)
            if row is None and events[0].version > 1:
                deferred[key] = events  # not born in this batch: it may have a row
                awaiting[key] = 1
            else:
                self._fold_into(batch, key, row, events)
        return batch

    async def write(self, conn: AsyncConnection, prepared: Prepared) -> Outcome:
        assert isinstance(prepared, _RowBatch)
        if prepared.deferred:
            await self._fold_deferred(conn, prepared)
        await self.write_rows(conn, prepared.before, prepared.rows)
        refs = prepared.refs
        prepared.outcome.touched = [
            Touched(refs[key], row["version"], row["position"])
            for key, row in prepared.rows.items()
        ]
        return prepared.outcome

    async def write_rows(
        self, conn: AsyncConnection, before: Mapping[str, Row | None], rows: Mapping[str, Row]
    ) -> None:
        """The thin writer: upsert every changed row in one statement."""
        await bulk.upsert(conn, self.table, list(rows.values()))

    def fold(
        self,
        row: Row | None,
        events: Iterable[Envelope],
        dead_letters: list[DeadLetter],
        *,
        owned: bool = False,
    ) -> tuple[Row | None, int]:
        """Apply ``events`` of one aggregate to its row; failures become dead letters.

        Returns a new row (the given one is never changed, unless ``owned`` says
        it is the caller's own copy to change in place) and how many events
        applied. Each apply function sees the row as the events before it left
        it and returns its changes, which land only once it has returned.
        """
        applied = 0
        mine: Row | None = row if owned else None  # our own copy, once we have one
        applies = self.applies
        for envelope in events:
            event = envelope.event
            try:
                apply = applies.get(type(event))
                if apply is None:
                    raise LookupError(f"{self.name} has no apply function for this event")
                if row is None:
                    if type(event) not in self.creates:
                        raise LookupError("no row yet: the aggregate's first event was not applied")
                    base = self.new_row(envelope)
                    changes = apply(base, event)
                    row = mine = base
                else:
                    changes = apply(row, event)
            except Exception as err:
                dead_letters.append(DeadLetter.of_event(self.label, envelope, err))
                continue
            if mine is None:
                row = mine = dict(row)
            mine.update(changes)
            mine["version"] = event.originator_version
            mine["position"] = envelope.position
            mine["updated_at"] = event.timestamp
            applied += 1
        return row, applied

    def new_row(self, envelope: Envelope) -> Row:
        ref = envelope.ref
        return {"tenant_id": ref.tenant, "id": ref.id, "created_at": envelope.event.timestamp}

    def _fold_into(
        self, batch: _RowBatch, key: str, row: Row | None, events: list[Envelope]
    ) -> None:
        outcome = batch.outcome
        new, applied = self.fold(row, events, outcome.dead_letters)
        outcome.applied += applied
        if new is None or new is row:
            return
        if key not in batch.before:
            batch.before[key] = row  # the row as the batch found it, for count deltas
        batch.rows[key] = new
        batch.refs[key] = events[0].ref
        cache = self._cache
        cache.pop(key, None)
        cache[key] = new  # most recently used last
        if len(cache) > self.cache_size:
            del cache[next(iter(cache))]

    async def _fold_deferred(self, conn: AsyncConnection, batch: _RowBatch) -> None:
        # Every earlier batch is written by now: the cache, if it has the row, has it
        # as they left it (they deferred it too, or folded it before this one was
        # prepared); otherwise the database has it.
        wanted: dict[tuple[str, Any], str] = {}
        found: dict[str, Row] = {}
        for key, events in batch.deferred.items():
            row = self._cache.get(key)
            if row is not None:
                found[key] = row
            else:
                ref = events[0].ref
                wanted[(ref.tenant, ref.id)] = key
        if wanted:
            for row in await bulk.fetch_rows(conn, self.table, list(wanted)):
                found[wanted[(row["tenant_id"], row["id"])]] = row
        awaiting = self._awaiting
        for key, events in batch.deferred.items():
            self._fold_into(batch, key, found.get(key), events)
            awaiting[key] -= 1
            if not awaiting[key]:
                del awaiting[key]
        batch.deferred.clear()


def group_by_aggregate(envelopes: Iterable[Envelope]) -> dict[str, list[Envelope]]:
    """Envelopes per aggregate key, each list in stream order."""
    groups: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        events = groups.get(envelope.key)
        if events is None:
            groups[envelope.key] = [envelope]
        else:
            events.append(envelope)
    return groups
