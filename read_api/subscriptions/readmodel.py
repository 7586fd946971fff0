"""The rows deviceUpdated and fleetUpdated re-read after each change notice."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import devices, fleets

_DEVICE = sa.select(devices).where(
    devices.c.tenant_id == sa.bindparam("tenant"), devices.c.id == sa.bindparam("id")
)
_FLEET = sa.select(fleets).where(
    fleets.c.tenant_id == sa.bindparam("tenant"), fleets.c.id == sa.bindparam("id")
)


class SnapshotReader:
    """One query per read, always scoped by tenant (invariant 8)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.reads = 0

    async def device(self, tenant: str, device_id: UUID) -> Row[Any] | None:
        return await self._one(_DEVICE, tenant, device_id)

    async def fleet(self, tenant: str, fleet_id: UUID) -> Row[Any] | None:
        return await self._one(_FLEET, tenant, fleet_id)

    async def _one(self, query: sa.Select[Any], tenant: str, id_: UUID) -> Row[Any] | None:
        self.reads += 1
        async with self._engine.connect() as conn:
            return (await conn.execute(query, {"tenant": tenant, "id": id_})).first()
