"""Read-your-writes: a request naming a commit position is answered once the read models
it reads have reached it, or fails with CONSISTENCY_TIMEOUT after a bounded wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.changes import ChangeNotice, LocalChangeBus
from projections.tables import devices
from read_api.app import GraphQLApp
from tests.support.graphql import codes, device_row, gql, graphql_client, insert, set_checkpoint

pytestmark = pytest.mark.integration

DEVICE = "query ($id: UUID!) { device(id: $id) { serialNumber status } }"


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the event loop (no timed sleep) until ``condition`` holds."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def until_waiting(app: GraphQLApp) -> None:
    await until(lambda: app.services.watcher.waiting > 0, "a request waits")


def notice(row: dict[str, Any], position: int) -> ChangeNotice:
    return ChangeNotice("devices", row["tenant_id"], "device", row["id"], row["version"], position)


async def test_a_request_waits_for_its_position_then_answers(db_engine: AsyncEngine) -> None:
    await set_checkpoint(db_engine, "devices", 5)
    row = device_row("acme", "RYW-1", position=10)
    bus = LocalChangeBus()

    async with graphql_client(db_engine, bus=bus) as (client, app):
        await app.start()
        request = asyncio.ensure_future(
            gql(client, DEVICE, {"id": str(row["id"])}, headers={"X-Vigil-Min-Position": "10"})
        )
        await until_waiting(app)
        assert not request.done()
        # The projector commits the row with its checkpoint, then publishes.
        await insert(db_engine, devices, [row])
        await set_checkpoint(db_engine, "devices", 10)
        await bus.publish([notice(row, 10)])
        body = await asyncio.wait_for(request, 5)

    assert "errors" not in body, body
    assert body["data"]["device"] == {"serialNumber": "RYW-1", "status": "ONLINE"}


async def test_a_position_not_reached_in_time_is_a_consistency_timeout(
    db_engine: AsyncEngine,
) -> None:
    await set_checkpoint(db_engine, "devices", 5)
    query = "{ devices(minPosition: 99) { totalCount } }"

    async with graphql_client(db_engine, consistency_timeout=0.2) as (client, _):
        body = await gql(client, query)

    assert body["data"] is None
    assert codes(body) == ["CONSISTENCY_TIMEOUT"]
    error = body["errors"][0]
    assert error["extensions"]["position"] == 99
    assert error["extensions"]["reached"] == {"devices": 5}
    assert "99" in error["message"] and "0.2s" in error["message"]


async def test_a_reached_position_costs_one_checkpoint_read_then_none(
    db_engine: AsyncEngine,
) -> None:
    await set_checkpoint(db_engine, "devices", 50)
    row = device_row("acme", "RYW-2")
    await insert(db_engine, devices, [row])
    headers = {"X-Vigil-Min-Position": "40"}

    async with graphql_client(db_engine) as (client, app):
        first = await gql(client, DEVICE, {"id": str(row["id"])}, headers=headers)
        second = await gql(client, DEVICE, {"id": str(row["id"])}, headers=headers)

    assert (
        first["data"] == second["data"] == {"device": {"serialNumber": "RYW-2", "status": "ONLINE"}}
    )
    assert app.services.watcher.queries == 1


async def test_without_a_bus_the_wait_polls_the_checkpoint(db_engine: AsyncEngine) -> None:
    await set_checkpoint(db_engine, "devices", 1)

    async with graphql_client(db_engine) as (client, app):
        request = asyncio.ensure_future(gql(client, "{ devices(minPosition: 7) { totalCount } }"))
        await until_waiting(app)
        await set_checkpoint(db_engine, "devices", 7)
        body = await asyncio.wait_for(request, 5)

    assert body["data"] == {"devices": {"totalCount": 0}}


async def test_a_malformed_position_header_is_refused(db_engine: AsyncEngine) -> None:
    async with graphql_client(db_engine) as (client, _):
        body = await gql(
            client, "{ viewer { tenant } }", headers={"X-Vigil-Min-Position": "soon"}, status=400
        )

    assert codes(body) == ["BAD_USER_INPUT"]


async def go_offline_unannounced(engine: AsyncEngine, row: dict[str, Any], position: int) -> None:
    """What the projector commits for the device going offline, before it publishes."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(devices)
            .where(devices.c.id == row["id"])
            .values(status="offline", position=position)
        )
    await set_checkpoint(engine, "devices", position)


async def test_cached_rows_are_retired_by_notices_and_skipped_for_read_your_writes(
    db_engine: AsyncEngine,
) -> None:
    await set_checkpoint(db_engine, "devices", 1)
    row = device_row("acme", "CACHE-1", position=1)
    await insert(db_engine, devices, [row])
    bus = LocalChangeBus()
    variables = {"id": str(row["id"])}

    async def status(client: httpx.AsyncClient, **headers: str) -> str:
        body = await gql(client, DEVICE, variables, headers=headers)
        return str(body["data"]["device"]["status"])

    async with graphql_client(db_engine, bus=bus) as (client, app):
        await app.start()
        assert await status(client) == "ONLINE"  # now cached
        await go_offline_unannounced(db_engine, row, position=2)  # the projector commits...
        cached = await status(client)  # ...but has not published yet
        fresh = await status(client, **{"X-Vigil-Min-Position": "2"})
        await bus.publish([notice(row, 2)])
        cache = app.services.cache
        assert cache is not None
        await until(lambda: len(cache) == 0, "the notice retires the cached row")
        after_notice = await status(client)

    assert (cached, fresh, after_notice) == ("ONLINE", "OFFLINE", "OFFLINE")
    assert cache.hits >= 1


PAGE = "{ devices(first: 10) { edges { node { serialNumber status } } } }"


async def test_cached_pages_are_retired_by_notices_and_skipped_for_read_your_writes(
    db_engine: AsyncEngine,
) -> None:
    await set_checkpoint(db_engine, "devices", 1)
    row = device_row("acme", "PAGE-1", position=1)
    await insert(db_engine, devices, [row])
    bus = LocalChangeBus()

    async def statuses(client: httpx.AsyncClient, **headers: str) -> list[str]:
        body = await gql(client, PAGE, headers=headers)
        return [edge["node"]["status"] for edge in body["data"]["devices"]["edges"]]

    async with graphql_client(db_engine, bus=bus) as (client, app):
        await app.start()
        cache = app.services.cache
        assert cache is not None
        await statuses(client)  # strawberry answers, and the document is planned
        assert await statuses(client) == ["ONLINE"]  # the row plan reads, and caches the page
        hits = cache.hits
        assert await statuses(client) == ["ONLINE"]
        assert cache.hits == hits + 1
        await go_offline_unannounced(db_engine, row, position=2)  # the projector commits...
        cached = await statuses(client)  # ...but has not published yet
        fresh = await statuses(client, **{"X-Vigil-Min-Position": "2"})
        before = cache.page_epoch(("devices", "acme"))
        await bus.publish([notice(row, 2)])
        await until(lambda: cache.page_epoch(("devices", "acme")) != before, "the notice")
        after_notice = await statuses(client)

    assert (cached, fresh, after_notice) == (["ONLINE"], ["OFFLINE"], ["OFFLINE"])
