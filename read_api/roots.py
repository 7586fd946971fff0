"""What the root query fields do, as plain functions of the request's context.

``read_api.schema`` exposes them to strawberry; ``read_api.fastpath`` calls
them directly for documents simple enough to skip the generic executor. Both
go through here, so both read the same rows under the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any
from uuid import UUID

from strawberry.dataloader import DataLoader

from domain.device import Device as DeviceAggregate
from domain.fleet import Fleet as FleetAggregate
from domain.model import Model as ModelAggregate
from read_api.context import ReadContext
from read_api.errors import NotFound
from read_api.pagination import PageRequest
from read_api.time_travel import rebuild, wants_time_travel
from read_api.types.common import Connection
from read_api.types.device import Device, DeviceFilterInput, devices_page
from read_api.types.fleet import Fleet, FleetFilterInput, fleets_page
from read_api.types.model import Model, ModelFilterInput, models_page


async def _lookup(
    context: ReadContext, kind: str, key_id: UUID, loader: Callable[[], DataLoader[UUID, Any]]
) -> Any:
    """One object by id: from the row cache when allowed, else batched through ``loader()``.

    The loader is asked for only on a miss: a cache hit builds no loaders.
    """
    cache = context.services.cache
    key: Hashable = (kind, context.tenant, key_id)
    epoch = 0
    if cache is not None and context.cacheable:
        hit = cache.get(key)
        if hit is not None:
            return hit
        epoch = cache.epoch
    found = await loader().load(key_id)
    if found is None:
        raise NotFound(f"no {kind} {key_id}", id=str(key_id))
    if cache is not None and context.cacheable:
        cache.put(key, found, epoch)
    return found


async def device(
    context: ReadContext,
    id: UUID,
    at_version: int | None = None,
    at_time: datetime | None = None,
    min_position: int | None = None,
) -> Device:
    context.require_position(min_position)
    if wants_time_travel(at_version, at_time):
        aggregate = await rebuild(
            context, DeviceAggregate, id, at_version=at_version, at_time=at_time
        )
        return Device.from_aggregate(aggregate)
    found: Device = await _lookup(context, "device", id, lambda: context.loaders.devices)
    return found


async def fleet(
    context: ReadContext,
    id: UUID,
    at_version: int | None = None,
    at_time: datetime | None = None,
    min_position: int | None = None,
) -> Fleet:
    context.require_position(min_position)
    if wants_time_travel(at_version, at_time):
        aggregate = await rebuild(
            context, FleetAggregate, id, at_version=at_version, at_time=at_time
        )
        return Fleet.from_aggregate(aggregate)
    found: Fleet = await _lookup(context, "fleet", id, lambda: context.loaders.fleets)
    return found


async def model(
    context: ReadContext,
    id: UUID,
    at_version: int | None = None,
    at_time: datetime | None = None,
    min_position: int | None = None,
) -> Model:
    context.require_position(min_position)
    if wants_time_travel(at_version, at_time):
        aggregate = await rebuild(
            context, ModelAggregate, id, at_version=at_version, at_time=at_time
        )
        return Model.from_aggregate(aggregate)
    found: Model = await _lookup(context, "model", id, lambda: context.loaders.models)
    return found


async def devices(
    context: ReadContext,
    page: PageRequest,
    filter: DeviceFilterInput | None = None,
    min_position: int | None = None,
) -> Connection[Device]:
    context.require_position(min_position)
    return await devices_page(context, filter, page)


async def fleets(
    context: ReadContext,
    page: PageRequest,
    filter: FleetFilterInput | None = None,
    min_position: int | None = None,
) -> Connection[Fleet]:
    context.require_position(min_position)
    return await fleets_page(context, filter, page)


async def models(
    context: ReadContext,
    page: PageRequest,
    filter: ModelFilterInput | None = None,
    min_position: int | None = None,
) -> Connection[Model]:
    context.require_position(min_position)
    return await models_page(context, filter, page)
