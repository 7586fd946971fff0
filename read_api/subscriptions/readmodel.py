"""The rows deviceUpdated and fleetUpdated re-read after each change notice.

The read API's own readers, straight from the database: never from the row
cache, which a notice may not have reached yet when the subscription reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from read_api.readers.devices import get_device
from read_api.readers.fleets import get_fleet

Read = Callable[[AsyncConnection, str, UUID], Awaitable[Row[Any] | None]]


class SnapshotReader:
    """One query per read, always scoped by tenant (invariant 8); counts its reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.reads = 0

    async def device(self, tenant: str, device_id: UUID) -> Row[Any] | None:
        return await self._one(get_device, tenant, device_id)

    async def fleet(self, tenant: str, fleet_id: UUID) -> Row[Any] | None:
        return await self._one(get_fleet, tenant, fleet_id)

    async def _one(self, read: Read, tenant: str, id_: UUID) -> Row[Any] | None:
        self.reads += 1
        async with self._engine.connect() as conn:
            return await read(conn, tenant, id_)
