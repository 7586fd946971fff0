"""The timeline read model: every event of every aggregate, with who did it and when.

This is the audit trail: one row per event, keyed by (tenant, aggregate,
version), with the actor and time the command supplied and the event's own
fields as JSON. Rows are only ever appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain import Device, Fleet, Model
from projections import bulk
from projections.envelope import BadCommit, Envelope, event_fields
from projections.projection import DeadLetter, Outcome, Projection, Touched


def timeline_row(envelope: Envelope) -> dict[str, Any]:
    """The audit row for one event (pure: the same envelope always gives the same row)."""
    event = envelope.event
    ref = envelope.ref
    return {
        "tenant_id": ref.tenant,
        "aggregate_id": ref.id,
        "version": event.originator_version,
        "aggregate_type": ref.type,
        "event_type": type(event).__name__,
        "position": envelope.position,
        "actor": event.actor,
        "occurred_at": event.timestamp,
        "payload": event_fields(event),
    }


class TimelineProjection(Projection):
    name = "timeline"
    aggregate_types = frozenset({Device.TYPE, Fleet.TYPE, Model.TYPE})
    table_names = ("timeline",)

    async def apply(
        self, conn: AsyncConnection, envelopes: Sequence[Envelope], bad: Sequence[BadCommit]
    ) -> Outcome:
        outcome = Outcome(dead_letters=[DeadLetter.of_commit(self.label, b) for b in bad])
        rows = []
        last: dict[tuple[str, Any], Touched] = {}
        for envelope in envelopes:
            try:
                rows.append(timeline_row(envelope))
            except Exception as err:
                outcome.dead_letters.append(DeadLetter.of_event(self.label, envelope, err))
                continue
            key = (envelope.ref.tenant, envelope.ref.id)
            last[key] = Touched(envelope.ref, envelope.version, envelope.position)
        await bulk.append(conn, self.tables["timeline"], rows)
        outcome.applied = len(rows)
        outcome.touched = list(last.values())
        return outcome
