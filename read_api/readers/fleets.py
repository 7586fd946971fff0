"""Reads of ``fleets`` and of the device counts the devices projection keeps per fleet."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.tables import fleet_device_counts, fleets
from read_api.pagination import Page, PageRequest, fetch_page

_KEY = (fleets.c.name,)  # unique per tenant
_BY_ID = sa.select(fleets).where(
    fleets.c.tenant_id == sa.bindparam("tenant"), fleets.c.id == sa.bindparam("id")
)


@dataclass(frozen=True, slots=True)
class FleetFilter:
    name_contains: str | None = None
    rollout_active: bool | None = None

    def where(self, tenant: str) -> list[sa.ColumnElement[bool]]:
        c = fleets.c
        clauses: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant]
        if self.name_contains:
            clauses.append(c.name.icontains(self.name_contains, autoescape=True))
        if self.rollout_active is True:
            clauses.append(c.rollout_status.is_not(None))
        elif self.rollout_active is False:
            clauses.append(c.rollout_status.is_(None))
        return clauses


@dataclass(frozen=True, slots=True)
class DeviceCounts:
    by_status: dict[str, int]
    by_model: dict[str, int]  # "" for devices that have not reported a model

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


async def get_fleet(conn: AsyncConnection, tenant: str, fleet_id: UUID) -> Row[Any] | None:
    return (await conn.execute(_BY_ID, {"tenant": tenant, "id": fleet_id})).first()


async def get_fleets(
    conn: AsyncConnection, tenant: str, ids: Sequence[UUID]
) -> dict[UUID, Row[Any]]:
    query = sa.select(fleets).where(fleets.c.tenant_id == tenant, fleets.c.id.in_(ids))
    return {row.id: row for row in await conn.execute(query)}


async def page_fleets(
    conn: AsyncConnection,
    tenant: str,
    where: FleetFilter,
    request: PageRequest,
    *,
    max_page_size: int,
) -> Page:
    query = sa.select(fleets).where(*where.where(tenant))
    return await fetch_page(conn, query, _KEY, request, max_page_size=max_page_size)


async def count_fleets(conn: AsyncConnection, tenant: str, where: FleetFilter) -> int:
    query = sa.select(sa.func.count()).select_from(fleets).where(*where.where(tenant))
    return int((await conn.execute(query)).scalar_one())


async def get_device_counts(
    conn: AsyncConnection, tenant: str, fleet_ids: Sequence[UUID]
) -> dict[UUID, DeviceCounts]:
    c = fleet_device_counts.c
    query = sa.select(c.fleet_id, c.dimension, c.key, c.count).where(
        c.tenant_id == tenant, c.fleet_id.in_(fleet_ids), c.count > 0
    )
    status: dict[UUID, dict[str, int]] = defaultdict(dict)
    model: dict[UUID, dict[str, int]] = defaultdict(dict)
    for fleet_id, dimension, key, count in await conn.execute(query):
        (status if dimension == "status" else model)[fleet_id][key] = count
    return {
        fleet_id: DeviceCounts(by_status=status.get(fleet_id, {}), by_model=model.get(fleet_id, {}))
        for fleet_id in fleet_ids
    }
