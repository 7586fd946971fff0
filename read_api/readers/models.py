"""Reads of the ``models`` table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.tables import models
from read_api.pagination import Page, PageRequest, fetch_page

_KEY = (models.c.name, models.c.model_version)  # unique per tenant
_BY_ID = sa.select(models).where(
    models.c.tenant_id == sa.bindparam("tenant"), models.c.id == sa.bindparam("id")
)


@dataclass(frozen=True, slots=True)
class ModelFilter:
    name: str | None = None
    model_version: str | None = None
    stage: str | None = None

    def where(self, tenant: str) -> list[sa.ColumnElement[bool]]:
        c = models.c
        clauses: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant]
        if self.name is not None:
            clauses.append(c.name == self.name)
        if self.model_version is not None:
            clauses.append(c.model_version == self.model_version)
        if self.stage is not None:
            clauses.append(c.stage == self.stage)
        return clauses


async def get_model(conn: AsyncConnection, tenant: str, model_id: UUID) -> Row[Any] | None:
    return (await conn.execute(_BY_ID, {"tenant": tenant, "id": model_id})).first()


async def get_models(
    conn: AsyncConnection, tenant: str, ids: Sequence[UUID]
) -> dict[UUID, Row[Any]]:
    query = sa.select(models).where(models.c.tenant_id == tenant, models.c.id.in_(ids))
    return {row.id: row for row in await conn.execute(query)}


async def page_models(
    conn: AsyncConnection,
    tenant: str,
    where: ModelFilter,
    request: PageRequest,
    *,
    max_page_size: int,
) -> Page:
    query = sa.select(models).where(*where.where(tenant))
    return await fetch_page(conn, query, _KEY, request, max_page_size=max_page_size)


async def count_models(conn: AsyncConnection, tenant: str, where: ModelFilter) -> int:
    query = sa.select(sa.func.count()).select_from(models).where(*where.where(tenant))
    return int((await conn.execute(query)).scalar_one())
