"""The peer: a plain strawberry schema over the same tables, as one would first write it.

Same documents, same tenant scoping (the same JWTs, verified by the same
``Authenticator``), same engine and pool; no document cache, no row cache,
strawberry's stock ASGI view. It answers the benchmark's two documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from strawberry.asgi import GraphQL

from commands.auth import Authenticator
from projections.tables import devices


@strawberry.type
class PeerDevice:
    id: UUID
    serial_number: str
    status: str
    health: str
    fleet_id: UUID | None
    reported_model_version: str | None
    last_seen_at: datetime | None
    anomaly_count: int
    version: int


@strawberry.type
class PeerEdge:
    cursor: str
    node: PeerDevice


@strawberry.type
class PeerPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class PeerConnection:
    edges: list[PeerEdge]
    page_info: PeerPageInfo


_FIELDS = [
    devices.c.id,
    devices.c.serial_number,
    devices.c.status,
    devices.c.health,
    devices.c.fleet_id,
    devices.c.reported_model_version,
    devices.c.last_seen_at,
    devices.c.anomaly_count,
    devices.c.version,
]


def _device(row: Any) -> PeerDevice:
    return PeerDevice(**row._mapping)


@strawberry.type
class Query:
    @strawberry.field
    async def device(self, info: strawberry.Info, id: UUID) -> PeerDevice | None:
        engine: AsyncEngine = info.context["engine"]
        query = sa.select(*_FIELDS).where(
            devices.c.tenant_id == info.context["tenant"], devices.c.id == id
        )
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _device(row) if row else None

    @strawberry.field
    async def devices(self, info: strawberry.Info, first: int = 20) -> PeerConnection:
        engine: AsyncEngine = info.context["engine"]
        query = (
            sa.select(*_FIELDS)
            .where(devices.c.tenant_id == info.context["tenant"])
            .order_by(devices.c.serial_number)
            .limit(first + 1)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        edges = [PeerEdge(cursor=row.serial_number, node=_device(row)) for row in rows[:first]]
        end = edges[-1].cursor if edges else None
        return PeerConnection(
            edges=edges, page_info=PeerPageInfo(has_next_page=len(rows) > first, end_cursor=end)
        )


class PeerGraphQL(GraphQL[dict[str, Any], None]):
    def __init__(self, engine: AsyncEngine, authenticator: Authenticator) -> None:
        super().__init__(strawberry.Schema(query=Query))
        self.engine = engine
        self.authenticator = authenticator

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        assert isinstance(request, Request)
        principal = self.authenticator.authenticate(request.headers.get("authorization"))
        return {"engine": self.engine, "tenant": principal.tenant}
