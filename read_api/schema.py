"""The GraphQL schema: root queries over the read models, plus the subscriptions.

Every root field reads under the caller's tenant (``info.context.tenant``),
waits for read-your-writes when the request names a position, and reports a
missing object as ``NOT_FOUND``, whether it never existed or belongs to
another tenant.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from read_api import roots
from read_api.context import ReadContext
from read_api.documents import CachedDocuments, DocumentCache
from read_api.errors import log_unexpected
from read_api.pagination import PageRequest
from read_api.subscriptions import Subscription
from read_api.types.common import SCALARS, Connection, Long
from read_api.types.device import Device, DeviceFilterInput
from read_api.types.fleet import Fleet, FleetFilterInput
from read_api.types.model import Model, ModelFilterInput

Info = strawberry.Info[ReadContext, None]


@strawberry.type(description="Who the request runs as.")
class Viewer:
    subject: str
    tenant: str
    role: str


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
        return await roots.device(info.context, id, at_version, at_time, min_position)

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
        page = PageRequest(first=first, after=after, last=last, before=before)
        return await roots.devices(info.context, page, filter, min_position)

    @strawberry.field(description="One fleet; with atVersion or atTime, as it was then.")
    async def fleet(
        self,
        info: Info,
        id: UUID,
        at_version: int | None = None,
        at_time: datetime | None = None,
        min_position: Long | None = None,
    ) -> Fleet | None:
        return await roots.fleet(info.context, id, at_version, at_time, min_position)

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
        page = PageRequest(first=first, after=after, last=last, before=before)
        return await roots.fleets(info.context, page, filter, min_position)

    @strawberry.field(description="One model; with atVersion or atTime, as it was then.")
    async def model(
        self,
        info: Info,
        id: UUID,
        at_version: int | None = None,
        at_time: datetime | None = None,
        min_position: Long | None = None,
    ) -> Model | None:
        return await roots.model(info.context, id, at_version, at_time, min_position)

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
        page = PageRequest(first=first, after=after, last=last, before=before)
        return await roots.models(info.context, page, filter, min_position)


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
