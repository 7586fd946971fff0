"""Time travel: an aggregate as it was at a version or a moment, rebuilt from its events.

The only place the read API touches the event store. The stream is named by
the caller's tenant, so another tenant's id finds no events and reads as
``NOT_FOUND``, exactly like an id that never existed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from uuid import UUID

from domain.base import VigilAggregate
from infrastructure.eventstore.port import StreamRef
from read_api.context import ReadContext
from read_api.errors import BadInput, NotFound

A = TypeVar("A", bound=VigilAggregate)


def wants_time_travel(at_version: int | None, at_time: datetime | None) -> bool:
    if at_version is not None and at_time is not None:
        raise BadInput("pass atVersion or atTime, not both")
    if at_version is not None and at_version < 1:
        raise BadInput(f"atVersion must be 1 or more, got {at_version}")
    if at_time is not None and (at_time.tzinfo is None or at_time.utcoffset() is None):
        raise BadInput("atTime must carry a timezone offset, e.g. 2026-01-31T12:00:00Z")
    return at_version is not None or at_time is not None


async def rebuild(
    context: ReadContext,
    kind: type[A],
    aggregate_id: UUID,
    *,
    at_version: int | None = None,
    at_time: datetime | None = None,
) -> A:
    """``kind`` ``aggregate_id`` of the caller's tenant as of ``at_version`` or ``at_time``."""
    repository = context.services.repository
    if repository is None:
        raise BadInput("time travel is not available on this server")
    ref = StreamRef(tenant=context.tenant, type=kind.TYPE, id=aggregate_id)
    aggregate = await repository.load_as_of(ref, version=at_version, at=at_time)
    if not isinstance(aggregate, kind) or aggregate.tenant_id != context.tenant:
        when = f"at version {at_version}" if at_version is not None else f"at {at_time}"
        raise NotFound(f"no {kind.TYPE} {aggregate_id} {when}", id=str(aggregate_id))
    if at_version is not None and aggregate.version < at_version:
        raise NotFound(
            f"{kind.TYPE} {aggregate_id} has no version {at_version}; "
            f"its latest is {aggregate.version}",
            id=str(aggregate_id),
            latest_version=aggregate.version,
        )
    return aggregate
