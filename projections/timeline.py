"""The timeline read model: every event of every aggregate, with who did it and when.

This is the audit trail: one row per event, keyed by (tenant, aggregate,
version), with the actor and time the command supplied and the event's own
fields as JSON. Rows are only ever appended: on PostgreSQL in binary COPY
form, encoded as the batch is prepared (``projections.pgcopy``), on SQLite
as plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import Device, Fleet, Model
from infrastructure.database import json_dumps
from infrastructure.eventstore.port import StreamRef
from projections import bulk, pgcopy, tables
from projections.envelope import BadCommit, Envelope, event_fields
from projections.projection import DeadLetter, Outcome, Prepared, Projection, Touched

COLUMNS = tuple(c.name for c in tables.timeline.columns)


def timeline_row(envelope: Envelope) -> tuple[Any, ...]:
    """The audit row for one event, values in ``COLUMNS`` order (pure: same event, same row)."""
    event = envelope.event
    ref = envelope.ref
    return (
        ref.tenant,
        ref.id,
        event.originator_version,
        ref.type,
        type(event).__name__,
        envelope.position,
        event.actor,
        event.timestamp,
        event_fields(event),
    )


assert COLUMNS == (
    "tenant_id",
    "aggregate_id",
    "version",
    "aggregate_type",
    "event_type",
    "position",
    "actor",
    "occurred_at",
    "payload",
), "timeline_row and _CopyRows must follow the table's column order"

_CACHED = 100_000  # most aggregates (or actors) whose encoded fields are kept


class _CopyRows:
    """``timeline_row`` in binary COPY form, with the fields that repeat encoded once.

    An aggregate's row always starts with the same field count, tenant and id;
    an event class always has the same aggregate and event type; actors repeat.
    """

    def __init__(self) -> None:
        self._heads: dict[str, bytes] = {}  # aggregate key -> count, tenant, id
        self._kinds: dict[tuple[str, type], bytes] = {}  # -> aggregate type, event type
        self._actors: dict[str, bytes] = {}

    def __call__(self, envelope: Envelope) -> bytes:
        event = envelope.event
        head = self._heads.get(envelope.key)
        if head is None:
            ref = envelope.ref
            head = pgcopy.field_count(len(COLUMNS)) + pgcopy.text(ref.tenant) + pgcopy.uuid(ref.id)
            _remember(self._heads, envelope.key, head)
        kind = self._kinds.get((envelope.ref.type, type(event)))
        if kind is None:
            kind = pgcopy.text(envelope.ref.type) + pgcopy.text(type(event).__name__)
            _remember(self._kinds, (envelope.ref.type, type(event)), kind)
        actor = self._actors.get(event.actor)
        if actor is None:
            actor = pgcopy.text(event.actor)
            _remember(self._actors, event.actor, actor)
        return b"".join(
            (
                head,
                pgcopy.int4(4, event.originator_version),
                kind,
                pgcopy.int8(8, envelope.position),
                actor,
                pgcopy.timestamptz(event.timestamp),
                pgcopy.data_field(json_dumps(event_fields(event)).encode()),
            )
        )


def _remember(cache: dict[Any, bytes], key: Any, value: bytes) -> None:
    if len(cache) >= _CACHED:
        cache.clear()  # a bound, not an LRU: a miss costs one encoding
    cache[key] = value


@dataclass(slots=True)
class _Rows(Prepared):
    outcome: Outcome
    records: list[Any] = field(default_factory=list)  # COPY rows (bytes) or value tuples
    # aggregate key -> (aggregate, version, position) of its last event. Not the
    # envelope itself: kept, it would keep its event alive to be freed later, cold.
    last: dict[str, tuple[StreamRef, int, int]] = field(default_factory=dict)


class TimelineProjection(Projection):
    name = "timeline"
    aggregate_types = frozenset({Device.TYPE, Fleet.TYPE, Model.TYPE})
    table_names = ("timeline",)

    def __init__(
        self,
        tables: Mapping[str, sa.Table],
        *,
        label: str | None = None,
        dialect: str = "postgresql",
    ) -> None:
        super().__init__(tables, label=label, dialect=dialect)
        self._copy_row = _CopyRows()

    def prepare(
        self, envelopes: Sequence[Envelope], bad: Sequence[BadCommit], into: Prepared | None
    ) -> _Rows:
        prepared = into if isinstance(into, _Rows) else _Rows(Outcome())
        outcome = prepared.outcome
        outcome.dead_letters.extend(DeadLetter.of_commit(self.label, b) for b in bad)
        records = prepared.records
        last = prepared.last
        # Encoded here, while the event is fresh in memory, not when the batch is written.
        encode = self._copy_row if self.dialect == "postgresql" else timeline_row
        for envelope in envelopes:
            try:
                row = encode(envelope)
            except Exception as err:
                outcome.dead_letters.append(DeadLetter.of_event(self.label, envelope, err))
                continue
            records.append(row)
            last[envelope.key] = (
                envelope.ref,
                envelope.event.originator_version,
                envelope.position,
            )
        outcome.applied = len(records)
        return prepared

    async def write(self, conn: AsyncConnection, prepared: Prepared) -> Outcome:
        assert isinstance(prepared, _Rows)
        if self.dialect == "postgresql":
            await bulk.copy_rows(conn, self.tables["timeline"], prepared.records)
        else:
            await bulk.append(conn, self.tables["timeline"], prepared.records)
        prepared.outcome.touched = [
            Touched(ref, version, position) for ref, version, position in prepared.last.values()
        ]
        return prepared.outcome
