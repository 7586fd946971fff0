"""The GraphQL schema: root queries over the read models, plus the subscriptions.

Every root field reads under the caller's tenant (``info.context.tenant``),
waits for read-your-writes when the request names a position, and reports a
missing object as ``NOT_FOUND``, whether it never existed or belongs to
another tenant.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from domain.device import Device as DeviceAggregate
from domain.fleet import Fleet as FleetAggregate
from domain.model import Model as ModelAggregate
from read_api.context import ReadContext
from read_api.documents import CachedDocuments, DocumentCache
from read_api.errors import NotFound, log_unexpected
from read_api.pagination import PageRequest
from read_api.subscriptions import Subscription
from read_api.time_travel import rebuild, wants_time_travel
from read_api.types.common import SCALARS, Connection, Long
from read_api.types.device import Device, DeviceFilterInput, devices_page
from read_api.types.fleet import Fleet, FleetFilterInput, fleets_page
from read_api.types.model import Model, ModelFilterInput, models_page

Info = strawberry.Info[ReadContext, None]


@strawberry.type(description="Who the request runs as.")
class Viewer:
    subject: str
    tenant: str
    role: str


async def _lookup(
    context: ReadContext, kind: str, key_id: UUID, loader: DataLoader[UUID, Any]
) -> Any:
    """One object by id: from the row cache when allowed, else batched through ``loader``."""
    cache = context.services.cache
    key: Hashable = (kind, context.tenant, key_id)
    epoch = 0
    if cache is not None and context.cacheable:
        hit = cache.get(key)
        if hit is not None:
            return hit
        epoch = cache.epoch
    found = await loader.load(key_id)
    if found is None:
        raise NotFound(f"no {kind} {key_id}", id=str(key_id))
    if cache is not None and context.cacheable:
        cache.put(key, found, epoch)
    return found


@strawberry.type
class Query:
    @strawberry.field(description="The caller, as the token names them.")
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        return Viewer(subject=principal.subject, tenant=principal.tenant, role=principal.role.name)

    @strawberry.field(description="One device; with atVersion or atTime, as it was then.")
    async def device(
        self,
        info: Info,
        id: UUID,
        at_version: int | None = None,
        at_time: datetime | None = None,
        min_position: Long | None = None,
    ) -> Device | None:
        context = info.context
        context.require_position(min_position)
        if wants_time_travel(at_version, at_time):
            aggregate = await rebuild(
                context, DeviceAggregate, id, at_version=at_version, at_time=at_time
            )
            return Device.from_aggregate(aggregate)
        found: Device = await _lookup(context, "device", id, context.loaders.devices)
        return found

    @strawberry.field(description="The caller's devices, ordered by serial number.")
    async def devices(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: DeviceFilterInput | None = None,
        min_position: Long | None = None,
    ) -> Connection[Device]:
        info.context.require_position(min_position)
        request = PageRequest(first=first, after=after, last=last, before=before)
        return await devices_page(info.context, filter, request)

    @strawberry.field(description="One fleet; with atVersion or atTime, as it was then.")
    async def fleet(
        self,
        info: Info,
        id: UUID,
        at_version: int | None = None,
        at_time: datetime | None = None,
        min_position: Long | None = None,
    ) -> Fleet | None:
        context = info.context
        context.require_position(min_position)
        if wants_time_travel(at_version, at_time):
            aggregate = await rebuild(
                context, FleetAggregate, id, at_version=at_version, at_time=at_time
            )
            return Fleet.from_aggregate(aggregate)
        found: Fleet = await _lookup(context, "fleet", id, context.loaders.fleets)
        return found

    @strawberry.field(description="The caller's fleets, ordered by name.")
    async def fleets(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: FleetFilterInput | None = None,
        min_position: Long | None = None,
    ) -> Connection[Fleet]:
        info.context.require_position(min_position)
        request = PageRequest(first=first, after=after, last=last, before=before)
        return await fleets_page(info.context, filter, request)

    @strawberry.field(description="One model; with atVersion or atTime, as it was then.")
    async def model(
        self,
        info: Info,
        id: UUID,
        at_version: int | None = None,
        at_time: datetime | None = None,
        min_position: Long | None = None,
    ) -> Model | None:
        context = info.context
        context.require_position(min_position)
        if wants_time_travel(at_version, at_time):
            aggregate = await rebuild(
                context, ModelAggregate, id, at_version=at_version, at_time=at_time
            )
            return Model.from_aggregate(aggregate)
        found: Model = await _lookup(context, "model", id, context.loaders.models)
        return found

    @strawberry.field(description="The caller's models, ordered by name and version.")
    async def models(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ModelFilterInput | None = None,
        min_position: Long | None = None,
    ) -> Connection[Model]:
        info.context.require_position(min_position)
        request = PageRequest(first=first, after=after, last=last, before=before)
        return await models_page(info.context, filter, request)


class VigilSchema(strawberry.Schema):
    """Logs only the errors that are bugs; the rest are the client's business."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_unexpected(errors)


def build_schema(documents: DocumentCache, *, introspection: bool) -> strawberry.Schema:
    return VigilSchema(
        query=Query,
        subscription=Subscription,
        extensions=[lambda: CachedDocuments(documents)],
        config=StrawberryConfig(
            scalar_map=SCALARS,
            # Without introspection, "did you mean ...?" would leak the schema anyway.
            disable_field_suggestions=not introspection,
        ),
    )
