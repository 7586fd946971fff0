"""GraphQL queries over real read-model tables, on PostgreSQL and on SQLite.

Rows are seeded through the tables (these tests are about the query side);
every test runs once per database through the ``db_engine`` fixture.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import devices, fleets, models
from tests.support.graphql import (
    codes,
    device_row,
    fleet_row,
    gql,
    graphql_client,
    insert,
    model_row,
    seed_fleet_counts,
)

pytestmark = pytest.mark.integration

DEVICE = """
query ($id: UUID!) {
  device(id: $id) {
    id serialNumber status health source version position
    fleet { name }
    reportedModel { name modelVersion sizeBytes }
  }
}
"""

DEVICES = """
query ($first: Int, $after: String, $last: Int, $before: String, $filter: DeviceFilterInput) {
  devices(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    edges { cursor node { serialNumber } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def serials(body: dict[str, Any]) -> list[str]:
    return [edge["node"]["serialNumber"] for edge in body["data"]["devices"]["edges"]]


async def test_a_device_is_read_by_id_with_its_fleet_and_model(db_engine: AsyncEngine) -> None:
    fleet = fleet_row("acme", "north")
    model = model_row("acme", "detector", "1.2.0")
    device = device_row(
        "acme",
        "SN-1",
        fleet_id=fleet["id"],
        reported_model_id=model["id"],
        reported_model_version="1.2.0",
    )
    await insert(db_engine, fleets, [fleet])
    await insert(db_engine, models, [model])
    await insert(db_engine, devices, [device])

    async with graphql_client(db_engine) as (client, _):
        body = await gql(client, DEVICE, {"id": str(device["id"])})

    assert "errors" not in body, body
    got = body["data"]["device"]
    assert got["serialNumber"] == "SN-1"
    assert got["status"] == "ONLINE"
    assert got["health"] == "HEALTHY"
    assert got["source"] == "READ_MODEL"
    assert got["position"] == device["position"]
    assert got["fleet"] == {"name": "north"}
    assert got["reportedModel"] == {
        "name": "detector",
        "modelVersion": "1.2.0",
        "sizeBytes": 5_000_000_000,
    }


async def test_an_unknown_device_is_null_with_not_found(db_engine: AsyncEngine) -> None:
    async with graphql_client(db_engine) as (client, _):
        body = await gql(client, DEVICE, {"id": "00000000-0000-0000-0000-000000000001"})

    assert body["data"] == {"device": None}
    assert codes(body) == ["NOT_FOUND"]


async def test_pages_follow_serial_order_forwards_and_backwards(db_engine: AsyncEngine) -> None:
    await insert(db_engine, devices, [device_row("acme", f"SN-{i:02}") for i in range(7)])

    async with graphql_client(db_engine) as (client, _):
        first = await gql(client, DEVICES, {"first": 3})
        after = first["data"]["devices"]["pageInfo"]["endCursor"]
        second = await gql(client, DEVICES, {"first": 3, "after": after})
        last = await gql(client, DEVICES, {"last": 2})
        before = last["data"]["devices"]["pageInfo"]["startCursor"]
        previous = await gql(client, DEVICES, {"last": 2, "before": before})

    assert serials(first) == ["SN-00", "SN-01", "SN-02"]
    assert first["data"]["devices"]["pageInfo"]["hasNextPage"] is True
    assert first["data"]["devices"]["pageInfo"]["hasPreviousPage"] is False
    assert first["data"]["devices"]["totalCount"] == 7
    assert serials(second) == ["SN-03", "SN-04", "SN-05"]
    assert second["data"]["devices"]["pageInfo"]["hasPreviousPage"] is True
    assert serials(last) == ["SN-05", "SN-06"]
    assert last["data"]["devices"]["pageInfo"]["hasPreviousPage"] is True
    assert last["data"]["devices"]["pageInfo"]["hasNextPage"] is False
    assert serials(previous) == ["SN-03", "SN-04"]


async def test_filters_narrow_by_fleet_status_model_and_serial(db_engine: AsyncEngine) -> None:
    north, south = fleet_row("acme", "north"), fleet_row("acme", "south")
    rows = [
        device_row("acme", "CAM-001", fleet_id=north["id"], reported_model_version="1.0.0"),
        device_row("acme", "CAM-002", fleet_id=north["id"], status="offline"),
        device_row("acme", "cam-003", fleet_id=south["id"], reported_model_version="1.0.0"),
        device_row("acme", "GW-001", status="decommissioned"),
    ]
    await insert(db_engine, fleets, [north, south])
    await insert(db_engine, devices, rows)

    async def matching(where: dict[str, Any]) -> list[str]:
        body = await gql(client, DEVICES, {"filter": where})
        assert "errors" not in body, body
        return serials(body)

    async with graphql_client(db_engine) as (client, _):
        assert await matching({"fleetId": str(north["id"])}) == ["CAM-001", "CAM-002"]
        assert await matching({"status": "OFFLINE"}) == ["CAM-002"]
        assert await matching({"modelVersion": "1.0.0"}) == ["CAM-001", "cam-003"]
        assert await matching({"search": "cam-00"}) == ["CAM-001", "CAM-002", "cam-003"]
        assert await matching({"serialPrefix": "CAM"}) == ["CAM-001", "CAM-002"]
        assert await matching({"search": "%"}) == []  # wildcards are literal
        assert await matching({"fleetId": str(north["id"]), "status": "ONLINE"}) == ["CAM-001"]


async def test_fleets_show_counts_and_their_own_devices(db_engine: AsyncEngine) -> None:
    north = fleet_row("acme", "north", rollout_count=1)
    rows = [
        device_row("acme", "A-1", fleet_id=north["id"], reported_model_version="2.0.0"),
        device_row("acme", "A-2", fleet_id=north["id"], status="offline"),
        device_row("acme", "B-1"),
    ]
    await insert(db_engine, fleets, [north])
    await insert(db_engine, devices, rows)
    await seed_fleet_counts(db_engine, rows)
    query = """
    { fleets(first: 10) { totalCount nodes {
        name rolloutCount
        deviceCounts { total byStatus { status count } byModel { modelVersion count } }
        devices(first: 10) { nodes { serialNumber } }
    } } }
    """

    async with graphql_client(db_engine) as (client, _):
        body = await gql(client, query)

    assert "errors" not in body, body
    (fleet,) = body["data"]["fleets"]["nodes"]
    assert fleet["deviceCounts"] == {
        "total": 2,
        "byStatus": [{"status": "offline", "count": 1}, {"status": "online", "count": 1}],
        "byModel": [{"modelVersion": None, "count": 1}, {"modelVersion": "2.0.0", "count": 1}],
    }
    assert fleet["devices"]["nodes"] == [{"serialNumber": "A-1"}, {"serialNumber": "A-2"}]


async def test_models_filter_by_stage(db_engine: AsyncEngine) -> None:
    await insert(
        db_engine,
        models,
        [
            model_row("acme", "detector", "1.0.0", stage="production"),
            model_row("acme", "detector", "1.1.0", stage="staging"),
        ],
    )
    query = "query ($f: ModelFilterInput) { models(filter: $f) { nodes { modelVersion stage } } }"

    async with graphql_client(db_engine) as (client, _):
        body = await gql(client, query, {"f": {"stage": "PRODUCTION"}})

    assert body["data"]["models"]["nodes"] == [{"modelVersion": "1.0.0", "stage": "PRODUCTION"}]


async def test_bad_cursors_and_page_sizes_are_bad_user_input(db_engine: AsyncEngine) -> None:
    async with graphql_client(db_engine) as (client, _):
        cursor = await gql(client, DEVICES, {"after": "not-a-cursor"})
        too_big = await gql(client, DEVICES, {"first": 101})
        both = await gql(client, DEVICES, {"first": 1, "last": 1})

    assert codes(cursor) == ["BAD_USER_INPUT"]
    assert "cursor" in cursor["errors"][0]["message"]
    assert codes(too_big) == ["BAD_USER_INPUT"]
    assert codes(both) == ["BAD_USER_INPUT"]
