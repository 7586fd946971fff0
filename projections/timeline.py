"""The timeline read model: every event of every aggregate, with who did it and when.

This is the audit trail: one row per event, keyed by (tenant, aggregate,
version), with the actor and time the command supplied and the event's own
fields as JSON. Rows are only ever appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain import Device, Fleet, Model
from infrastructure.database import json_dumps
from projections import bulk, tables
from projections.envelope import BadCommit, Envelope, event_fields
from projections.projection import DeadLetter, Outcome, Prepared, Projection, Touched

COLUMNS = tuple(c.name for c in tables.timeline.columns)


def timeline_row(envelope: Envelope, *, json_text: bool = False) -> tuple[Any, ...]:
    """The audit row for one event, values in ``COLUMNS`` order (pure: same event, same row).

    A tuple rather than a dict: this runs once per event and feeds COPY as is.
    ``json_text`` gives the payload as JSON text, which is what COPY takes.
    """
    event = envelope.event
    ref = envelope.ref
    payload = event_fields(event)
    return (
        ref.tenant,
        ref.id,
        event.originator_version,
        ref.type,
        type(event).__name__,
        envelope.position,
        event.actor,
        event.timestamp,
        json_dumps(payload) if json_text else payload,
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
), "timeline_row must follow the table's column order"


@dataclass(slots=True)
class _Rows(Prepared):
    outcome: Outcome
    records: list[tuple[Any, ...]] = field(default_factory=list)
    last: dict[str, Envelope] = field(default_factory=dict)  # aggregate key -> its last event


class TimelineProjection(Projection):
    name = "timeline"
    aggregate_types = frozenset({Device.TYPE, Fleet.TYPE, Model.TYPE})
    table_names = ("timeline",)

    def prepare(
        self, envelopes: Sequence[Envelope], bad: Sequence[BadCommit], into: Prepared | None
    ) -> _Rows:
        prepared = into if isinstance(into, _Rows) else _Rows(Outcome())
        outcome = prepared.outcome
        outcome.dead_letters.extend(DeadLetter.of_commit(self.label, b) for b in bad)
        records = prepared.records
        last = prepared.last
        # COPY takes JSON as text: encode here, off the write path, when that is the route.
        as_text = self.dialect == "postgresql"
        for envelope in envelopes:
            try:
                row = timeline_row(envelope, json_text=as_text)
            except Exception as err:
                outcome.dead_letters.append(DeadLetter.of_event(self.label, envelope, err))
                continue
            records.append(row)
            last[envelope.key] = envelope
        outcome.applied = len(records)
        return prepared

    async def write(self, conn: AsyncConnection, prepared: Prepared) -> Outcome:
        assert isinstance(prepared, _Rows)
        await bulk.append(conn, self.tables["timeline"], prepared.records, json_as_text=True)
        prepared.outcome.touched = [
            Touched(e.ref, e.version, e.position) for e in prepared.last.values()
        ]
        return prepared.outcome
