"""Reads of the ``devices`` table: by id, by ids, pages with filters, counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.tables import devices
from read_api.pagination import Page, PageRequest, fetch_page

# Serial numbers are unique per tenant, so they alone order a page.
PAGE_KEY = (devices.c.serial_number,)
_BY_ID = sa.select(devices).where(
    devices.c.tenant_id == sa.bindparam("tenant"), devices.c.id == sa.bindparam("id")
)


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    fleet_id: UUID | None = None
    status: str | None = None
    health: str | None = None
    model_version: str | None = None  # the version the device reports it runs
    desired_model_version: str | None = None
    serial_prefix: str | None = None  # case-sensitive, served by the serial index
    serial_contains: str | None = None  # case-insensitive substring search

    def where(self, tenant: str) -> list[sa.ColumnElement[bool]]:
        c = devices.c
        clauses: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant]
        if self.fleet_id is not None:
            clauses.append(c.fleet_id == self.fleet_id)
        if self.status is not None:
            clauses.append(c.status == self.status)
        if self.health is not None:
            clauses.append(c.health == self.health)
        if self.model_version is not None:
            clauses.append(c.reported_model_version == self.model_version)
        if self.desired_model_version is not None:
            clauses.append(c.desired_model_version == self.desired_model_version)
        if self.serial_prefix:
            prefix = self.serial_prefix
            # LIKE uses the serial index on PostgreSQL; SQLite's LIKE ignores case,
            # so the exact comparison keeps the two databases answering alike.
            clauses.append(c.serial_number.startswith(prefix, autoescape=True))
            clauses.append(sa.func.substr(c.serial_number, 1, len(prefix)) == prefix)
        if self.serial_contains:
            clauses.append(c.serial_number.icontains(self.serial_contains, autoescape=True))
        return clauses


async def get_device(conn: AsyncConnection, tenant: str, device_id: UUID) -> Row[Any] | None:
    result = await conn.execute(_BY_ID, {"tenant": tenant, "id": device_id})
    return result.first()


_BY_IDS = sa.select(devices).where(
    devices.c.tenant_id == sa.bindparam("tenant"),
    devices.c.id.in_(sa.bindparam("ids", expanding=True)),
)


async def get_devices(
    conn: AsyncConnection, tenant: str, ids: Sequence[UUID]
) -> dict[UUID, Row[Any]]:
    # Statements built once: a lone id (the common batch of a device(id)
    # request) reads like get_device, several through one expanding IN.
    if len(ids) == 1:
        result = await conn.execute(_BY_ID, {"tenant": tenant, "id": ids[0]})
    else:
        result = await conn.execute(_BY_IDS, {"tenant": tenant, "ids": list(ids)})
    return {row.id: row for row in result}


async def page_devices(
    conn: AsyncConnection,
    tenant: str,
    where: DeviceFilter,
    request: PageRequest,
    *,
    max_page_size: int,
) -> Page:
    if where == _NO_FILTER:  # the usual page: one statement, built once
        return await fetch_page(
            conn,
            _TENANT_DEVICES,
            PAGE_KEY,
            request,
            max_page_size=max_page_size,
            params={"tenant": tenant},
            prepared=_PREPARED,
        )
    query = sa.select(devices).where(*where.where(tenant))
    return await fetch_page(conn, query, PAGE_KEY, request, max_page_size=max_page_size)


_NO_FILTER = DeviceFilter()
_TENANT_DEVICES = sa.select(devices).where(devices.c.tenant_id == sa.bindparam("tenant"))
_PREPARED: dict[bool, sa.Select[Any]] = {}


async def count_devices(conn: AsyncConnection, tenant: str, where: DeviceFilter) -> int:
    query = sa.select(sa.func.count()).select_from(devices).where(*where.where(tenant))
    return int((await conn.execute(query)).scalar_one())
