"""DataLoaders, built per request: one SQL query per kind of row a request needs.

A page of 100 devices asking for each device's fleet and models costs three
queries (devices, fleets, models), not 201. Loaders live in the request's
``ReadContext``, so a batch only ever holds ids the caller asked for, read
under the caller's tenant; each batch first waits for read-your-writes, like
every other read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from read_api.context import ReadContext
from read_api.readers.devices import get_devices
from read_api.readers.fleets import DeviceCounts, get_device_counts, get_fleets
from read_api.readers.models import get_models
from read_api.types import device, fleet, model

T = TypeVar("T")

Fetch = Callable[[AsyncConnection, str, Sequence[UUID]], Awaitable[dict[UUID, Any]]]


class Loaders:
    """The loaders of one request; each is created the first time it is used."""

    def __init__(self, context: ReadContext) -> None:
        self.context = context
        self._devices: DataLoader[UUID, device.Device | None] | None = None
        self._fleets: DataLoader[UUID, fleet.Fleet | None] | None = None
        self._models: DataLoader[UUID, model.Model | None] | None = None
        self._counts: DataLoader[UUID, DeviceCounts] | None = None

    @property
    def devices(self) -> DataLoader[UUID, device.Device | None]:
        if self._devices is None:
            self._devices = self._rows(device.PROJECTION, get_devices, device.Device.from_row)
        return self._devices

    @property
    def fleets(self) -> DataLoader[UUID, fleet.Fleet | None]:
        if self._fleets is None:
            self._fleets = self._rows(fleet.PROJECTION, get_fleets, fleet.Fleet.from_row)
        return self._fleets

    @property
    def models(self) -> DataLoader[UUID, model.Model | None]:
        if self._models is None:
            self._models = self._rows(model.PROJECTION, get_models, model.Model.from_row)
        return self._models

    @property
    def device_counts(self) -> DataLoader[UUID, DeviceCounts]:
        # Counts are kept by the devices projection, next to the device rows.
        if self._counts is None:
            self._counts = self._rows(device.PROJECTION, get_device_counts, lambda c: c)
        return self._counts

    def _rows(
        self, projection: str, fetch: Fetch, convert: Callable[[Any], T]
    ) -> DataLoader[UUID, Any]:
        context = self.context

        async def load(ids: list[UUID]) -> list[T | None]:
            await context.reach(projection)
            async with context.connect() as conn:
                found = await fetch(conn, context.tenant, ids)
            return [convert(found[i]) if i in found else None for i in ids]

        return DataLoader(load_fn=load)


def make_loaders(context: ReadContext) -> Loaders:
    return Loaders(context)
