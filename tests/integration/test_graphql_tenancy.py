"""A tenant never sees another tenant's data through GraphQL: by id, by listing, nested,
or by time travel over the real JetStream event store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.device import Device
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import StreamRef
from infrastructure.repository import Repository
from projections.tables import devices, fleets, models
from tests.support.graphql import (
    T0,
    codes,
    device_row,
    fleet_row,
    gql,
    graphql_client,
    insert,
    model_row,
)

pytestmark = pytest.mark.integration

LOOKUPS = """
query ($device: UUID!, $fleet: UUID!, $model: UUID!) {
  device(id: $device) { serialNumber }
  fleet(id: $fleet) { name }
  model(id: $model) { name }
}
"""

LISTINGS = """
{
  devices { totalCount nodes { serialNumber } }
  fleets { totalCount nodes { name } }
  models { totalCount nodes { name } }
}
"""


async def test_another_tenants_rows_are_not_found_by_id_nor_listed(
    db_engine: AsyncEngine,
) -> None:
    fleet = fleet_row("tenant-a", "secret-fleet")
    model = model_row("tenant-a", "secret-model", "1.0.0")
    device = device_row("tenant-a", "SECRET-1", fleet_id=fleet["id"], reported_model_id=model["id"])
    await insert(db_engine, fleets, [fleet])
    await insert(db_engine, models, [model])
    await insert(db_engine, devices, [device])
    ids = {"device": str(device["id"]), "fleet": str(fleet["id"]), "model": str(model["id"])}

    async with graphql_client(db_engine) as (client, _):
        as_a = await gql(client, LOOKUPS, ids, tenant="tenant-a")
        as_b = await gql(client, LOOKUPS, ids, tenant="tenant-b")
        listed_by_b = await gql(client, LISTINGS, tenant="tenant-b")
        listed_by_a = await gql(client, LISTINGS, tenant="tenant-a")

    assert as_a["data"] == {
        "device": {"serialNumber": "SECRET-1"},
        "fleet": {"name": "secret-fleet"},
        "model": {"name": "secret-model"},
    }
    assert as_b["data"] == {"device": None, "fleet": None, "model": None}
    assert sorted(codes(as_b)) == ["NOT_FOUND"] * 3
    empty = {"totalCount": 0, "nodes": []}
    assert listed_by_b["data"] == {"devices": empty, "fleets": empty, "models": empty}
    assert listed_by_a["data"]["devices"]["totalCount"] == 1


async def test_nested_lookups_never_cross_tenants(db_engine: AsyncEngine) -> None:
    # A corrupt or hostile row in tenant B that points at tenant A's fleet and model.
    fleet = fleet_row("tenant-a", "secret-fleet")
    model = model_row("tenant-a", "secret-model", "1.0.0")
    await insert(db_engine, fleets, [fleet])
    await insert(db_engine, models, [model])
    await insert(
        db_engine,
        devices,
        [device_row("tenant-b", "B-1", fleet_id=fleet["id"], reported_model_id=model["id"])],
    )
    query = "{ devices { nodes { serialNumber fleet { name } reportedModel { name } } } }"

    async with graphql_client(db_engine) as (client, _):
        body = await gql(client, query, tenant="tenant-b")

    assert body["data"]["devices"]["nodes"] == [
        {"serialNumber": "B-1", "fleet": None, "reportedModel": None}
    ]


async def test_the_row_cache_is_per_tenant(db_engine: AsyncEngine) -> None:
    from infrastructure.changes import LocalChangeBus

    device = device_row("tenant-a", "A-1")
    await insert(db_engine, devices, [device])
    query = "query ($id: UUID!) { device(id: $id) { serialNumber } }"

    async with graphql_client(db_engine, bus=LocalChangeBus()) as (client, app):
        await app.start()
        warm = await gql(client, query, {"id": str(device["id"])}, tenant="tenant-a")
        other = await gql(client, query, {"id": str(device["id"])}, tenant="tenant-b")

    assert warm["data"]["device"] == {"serialNumber": "A-1"}
    assert other["data"]["device"] is None
    assert codes(other) == ["NOT_FOUND"]


async def test_the_page_cache_is_per_tenant(db_engine: AsyncEngine) -> None:
    from infrastructure.changes import LocalChangeBus

    await insert(db_engine, devices, [device_row("tenant-a", "A-1"), device_row("tenant-b", "B-1")])
    query = "{ devices(first: 5) { edges { node { serialNumber } } } }"

    async with graphql_client(db_engine, bus=LocalChangeBus()) as (client, app):
        await app.start()
        pages = [await gql(client, query, tenant="tenant-a") for _ in range(3)]  # now cached
        other = await gql(client, query, tenant="tenant-b")
        assert app.services.cache is not None and app.services.cache.hits >= 1

    serials = [[e["node"]["serialNumber"] for e in p["data"]["devices"]["edges"]] for p in pages]
    assert serials == [["A-1"]] * 3
    assert other["data"]["devices"]["edges"] == [{"node": {"serialNumber": "B-1"}}]


TIME_TRAVEL = """
query ($id: UUID!, $v: Int, $t: DateTime) {
  device(id: $id, atVersion: $v, atTime: $t) { status version source fleetId position health }
}
"""


async def test_time_travel_rebuilds_from_events_and_only_for_the_owner(
    db_engine: AsyncEngine, jetstream_store: JetStreamEventStore
) -> None:
    repository = Repository(jetstream_store, build_mapper())
    device = Device.register(
        tenant_id="tenant-a", serial_number="TT-1", hardware_profile="orin", actor="ops", at=T0
    )
    device.come_online(actor="dev", at=T0 + timedelta(minutes=1))
    device.go_offline(actor="liveness", at=T0 + timedelta(minutes=2))
    loaded = await repository.load(StreamRef("tenant-a", "device", device.id))
    await repository.save(loaded, device.collect_events())
    variables = {"id": str(device.id)}

    async with graphql_client(db_engine, repository=repository) as (client, _):
        v2 = await gql(client, TIME_TRAVEL, {**variables, "v": 2}, tenant="tenant-a")
        at = (T0 + timedelta(minutes=2, seconds=-1)).isoformat()
        at_time = await gql(client, TIME_TRAVEL, {**variables, "t": at}, tenant="tenant-a")
        latest = await gql(client, TIME_TRAVEL, {**variables, "v": 3}, tenant="tenant-a")
        beyond = await gql(client, TIME_TRAVEL, {**variables, "v": 9}, tenant="tenant-a")
        from_b = await gql(client, TIME_TRAVEL, {**variables, "v": 2}, tenant="tenant-b")
        from_b_at = await gql(client, TIME_TRAVEL, {**variables, "t": at}, tenant="tenant-b")
        naive = await gql(client, TIME_TRAVEL, {**variables, "t": "2026-01-01T00:01:00"})

    expected_v2 = {
        "status": "ONLINE",
        "version": 2,
        "source": "EVENT_LOG",
        "fleetId": None,
        "position": None,
        "health": None,
    }
    assert v2["data"]["device"] == expected_v2, v2
    assert at_time["data"]["device"] == expected_v2
    assert latest["data"]["device"]["status"] == "OFFLINE"
    assert codes(beyond) == ["NOT_FOUND"]
    assert from_b["data"] == {"device": None}
    assert codes(from_b) == ["NOT_FOUND"]
    assert codes(from_b_at) == ["NOT_FOUND"]
    assert codes(naive) == ["BAD_USER_INPUT"]


async def test_requests_without_a_valid_token_are_refused(db_engine: AsyncEngine) -> None:
    async with graphql_client(db_engine) as (client, _):
        missing = await client.post("/graphql", json={"query": "{ viewer { tenant } }"})
        forged = await client.post(
            "/graphql",
            json={"query": "{ viewer { tenant } }"},
            headers={"Authorization": "Bearer not.a.jwt"},
        )
        viewer = await gql(client, "{ viewer { subject tenant role } }", tenant="tenant-b")

    assert missing.status_code == 401
    assert missing.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert forged.status_code == 401
    assert viewer["data"]["viewer"] == {"subject": "tester", "tenant": "tenant-b", "role": "viewer"}
