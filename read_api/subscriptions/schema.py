"""The Subscription root type: deviceUpdated, fleetUpdated and events.

Resolvers read the tenant from the connection's principal and nothing else, so
a subscription can only ever see its own tenant's rows and events. Over
websockets with ``SubscriptionsMixin`` each resolver runs once per shared
execution (one per query, variables and tenant); anywhere else, once per
subscriber.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from commands.auth import Principal
from read_api.errors import BadInput, ReadApiError
from read_api.subscriptions.events import EventFilter, EventRecord, SlowSubscription
from read_api.subscriptions.service import SubscriptionHub
from read_api.types.common import Long
from read_api.types.device import Device
from read_api.types.fleet import Fleet

AGGREGATE_TYPES = ("device", "fleet", "model")
_START = Long(0)  # before the first commit


class SlowConsumer(ReadApiError):
    code = "SLOW_CONSUMER"


def _hub(info: Info[Any, Any]) -> SubscriptionHub:
    context = info.context
    hub = getattr(context, "subscriptions", None)
    if hub is None:  # a context without the hub: the app keeps it in its state
        hub = context.request.app.state.subscriptions
    return hub


def _renew(info: Info[Any, Any]) -> None:
    """A subscription's context lives as long as its connection: drop per-request caches
    (DataLoaders) before each event, or nested fields would stay as they first were."""
    renew = getattr(info.context, "renew", None)
    if renew is not None:
        renew()


def _principal(info: Info[Any, Any]) -> Principal:
    principal = getattr(info.context, "principal", None)
    if not isinstance(principal, Principal):
        raise GraphQLError("not authenticated", extensions={"code": "UNAUTHENTICATED"})
    return principal


@strawberry.type(description="One event, as stored; every event of a commit shares its position.")
class StreamEvent:
    position: Long = strawberry.field(description="The commit's position in the event log.")
    aggregate_type: str
    aggregate_id: UUID
    version: int = strawberry.field(description="The aggregate version this event produced.")
    type: str = strawberry.field(description="The event, e.g. AnomalyRaised.")
    actor: str
    occurred_at: datetime
    data: JSON = strawberry.field(description="The event's own fields.")

    @classmethod
    def of(cls, record: EventRecord) -> StreamEvent:
        return cls(
            position=Long(record.position),
            aggregate_type=record.aggregate_type,
            aggregate_id=record.aggregate_id,
            version=record.version,
            type=record.type,
            actor=record.actor,
            occurred_at=record.occurred_at,
            data=cast(JSON, record.data),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The device's read model now, then again after every change is committed. "
        "A slow client gets the latest state, not a backlog."
    )
    async def device_updated(self, info: Info[Any, Any], id: UUID) -> AsyncGenerator[Device, None]:
        tenant = _principal(info).tenant
        hub = _hub(info)
        reader = hub.require_snapshots()
        with hub.notices.watch("devices", tenant, "device", id) as watch:
            last = None
            changes = watch.changes()
            while True:
                row = await reader.device(tenant, id)
                if row is not None and row != last:
                    last = row
                    _renew(info)
                    yield Device.from_row(row)
                await anext(changes)

    @strawberry.subscription(
        description="The fleet's read model, rollout progress included, now and after every "
        "committed change. A slow client gets the latest state, not a backlog."
    )
    async def fleet_updated(self, info: Info[Any, Any], id: UUID) -> AsyncGenerator[Fleet, None]:
        tenant = _principal(info).tenant
        hub = _hub(info)
        reader = hub.require_snapshots()
        with hub.notices.watch("fleets", tenant, "fleet", id) as watch:
            last = None
            changes = watch.changes()
            while True:
                row = await reader.fleet(tenant, id)
                if row is not None and row != last:
                    last = row
                    _renew(info)
                    yield Fleet.from_row(row)
                await anext(changes)

    @strawberry.subscription(
        description="Each commit's events after position `after` (history first, then live), "
        "one message per commit. Resubscribe with the last position received: nothing is "
        "missed and nothing repeats. A client too slow to keep up gets a SLOW_CONSUMER error."
    )
    async def events(
        self,
        info: Info[Any, Any],
        after: Long = _START,
        aggregate_id: UUID | None = None,
        aggregate_type: str | None = None,
        event_types: list[str] | None = None,
    ) -> AsyncGenerator[list[StreamEvent], None]:
        tenant = _principal(info).tenant
        if after < 0:
            raise BadInput("after must be >= 0")
        if aggregate_type is not None and aggregate_type not in AGGREGATE_TYPES:
            raise BadInput(f"aggregateType must be one of {', '.join(AGGREGATE_TYPES)}")
        flt = EventFilter(
            tenant=tenant,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            event_types=frozenset(event_types) if event_types is not None else None,
        )
        stream = _hub(info).events.stream(flt, after)
        try:
            async for records in stream:
                yield [StreamEvent.of(r) for r in records]
        except SlowSubscription as err:
            raise SlowConsumer(
                f"{err}; resubscribe with after: the last position received"
            ) from err
        finally:
            await stream.aclose()
