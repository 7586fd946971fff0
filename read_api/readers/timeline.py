"""Reads of the ``timeline`` table: one aggregate's events, as projected."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.tables import timeline
from read_api.pagination import Page, PageRequest, fetch_page

_KEY = (timeline.c.version,)


async def page_history(
    conn: AsyncConnection,
    tenant: str,
    aggregate_id: UUID,
    request: PageRequest,
    *,
    max_page_size: int,
    up_to_version: int | None = None,
) -> Page:
    query = sa.select(timeline).where(*_where(tenant, aggregate_id, up_to_version))
    return await fetch_page(conn, query, _KEY, request, max_page_size=max_page_size)


async def count_history(
    conn: AsyncConnection, tenant: str, aggregate_id: UUID, *, up_to_version: int | None = None
) -> int:
    where = _where(tenant, aggregate_id, up_to_version)
    query = sa.select(sa.func.count()).select_from(timeline).where(*where)
    return int((await conn.execute(query)).scalar_one())


def _where(
    tenant: str, aggregate_id: UUID, up_to_version: int | None
) -> list[sa.ColumnElement[bool]]:
    c = timeline.c
    clauses: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant, c.aggregate_id == aggregate_id]
    if up_to_version is not None:  # the history of an aggregate rebuilt by time travel
        clauses.append(c.version <= up_to_version)
    return clauses
