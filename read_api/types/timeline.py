"""An aggregate's history as the timeline projection records it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from read_api.context import ReadContext
from read_api.pagination import PageRequest
from read_api.readers.timeline import count_history, page_history
from read_api.types.common import Connection, Long, connection

TIMELINE = "timeline"  # the projection these rows come from


@strawberry.type(description="One event in an aggregate's history.")
class TimelineEvent:
    version: int = strawberry.field(description="The aggregate version this event produced.")
    position: Long = strawberry.field(description="The stream position of its commit.")
    type: str = strawberry.field(description="What happened, e.g. AnomalyRaised.")
    actor: str
    occurred_at: datetime
    payload: JSON

    @classmethod
    def from_row(cls, row: Any) -> TimelineEvent:
        return cls(
            version=row.version,
            position=row.position,
            type=row.event_type,
            actor=row.actor,
            occurred_at=row.occurred_at,
            payload=row.payload,
        )


async def history_of(
    context: ReadContext,
    aggregate_id: UUID,
    request: PageRequest,
    *,
    up_to_version: int | None,
) -> Connection[TimelineEvent]:
    await context.reach(TIMELINE)
    tenant = context.tenant
    async with context.connect() as conn:
        page = await page_history(
            conn,
            tenant,
            aggregate_id,
            request,
            max_page_size=context.services.limits.max_page_size,
            up_to_version=up_to_version,
        )

    async def count() -> int:
        async with context.connect() as conn:
            return await count_history(conn, tenant, aggregate_id, up_to_version=up_to_version)

    return connection(page, TimelineEvent.from_row, count)
