"""DataLoaders turn N+1 lookups into one query per kind of row: counted, not guessed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import devices, fleets, models
from tests.support.graphql import (
    device_row,
    fleet_row,
    gql,
    graphql_client,
    insert,
    model_row,
    seed_fleet_counts,
)

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def selects(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SELECT statements ``engine`` runs inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def seed(engine: AsyncEngine) -> list[dict[str, Any]]:
    fleet_rows = [fleet_row("acme", f"fleet-{i}") for i in range(5)]
    model_rows = [model_row("acme", "detector", f"1.{i}.0") for i in range(3)]
    device_rows = [
        device_row(
            "acme",
            f"SN-{i:03}",
            fleet_id=fleet_rows[i % 5]["id"],
            reported_model_id=model_rows[i % 3]["id"],
            desired_model_id=model_rows[(i + 1) % 3]["id"],
        )
        for i in range(40)
    ]
    await insert(engine, fleets, fleet_rows)
    await insert(engine, models, model_rows)
    await insert(engine, devices, device_rows)
    await seed_fleet_counts(engine, device_rows)
    return device_rows


async def test_a_page_of_devices_with_fleets_and_models_costs_three_queries(
    db_engine: AsyncEngine,
) -> None:
    await seed(db_engine)
    query = """{ devices(first: 40) { nodes {
        serialNumber fleet { name } reportedModel { modelVersion } desiredModel { modelVersion }
    } } }"""

    async with graphql_client(db_engine) as (client, _):
        with selects(db_engine) as statements:
            body = await gql(client, query)

    nodes = body["data"]["devices"]["nodes"]
    assert len(nodes) == 40
    assert all(node["fleet"] and node["reportedModel"] and node["desiredModel"] for node in nodes)
    # The page, one batch of fleets, one batch of models (desired and reported together).
    assert len(statements) == 3, statements


async def test_fleet_counts_are_one_query_for_the_whole_page(db_engine: AsyncEngine) -> None:
    await seed(db_engine)
    query = "{ fleets(first: 5) { nodes { name deviceCounts { total } } } }"

    async with graphql_client(db_engine) as (client, _):
        with selects(db_engine) as statements:
            body = await gql(client, query)

    assert [n["deviceCounts"]["total"] for n in body["data"]["fleets"]["nodes"]] == [8] * 5
    assert len(statements) == 2, statements


async def test_aliased_lookups_by_id_are_batched(db_engine: AsyncEngine) -> None:
    rows = await seed(db_engine)
    lookups = " ".join(
        f'd{i}: device(id: "{row["id"]}") {{ serialNumber }}' for i, row in enumerate(rows[:10])
    )

    async with graphql_client(db_engine) as (client, _):
        with selects(db_engine) as statements:
            body = await gql(client, f"{{ {lookups} }}")

    assert [body["data"][f"d{i}"]["serialNumber"] for i in range(10)] == [
        row["serial_number"] for row in rows[:10]
    ]
    assert len(statements) == 1, statements


async def test_loaders_are_not_shared_between_requests(db_engine: AsyncEngine) -> None:
    rows = await seed(db_engine)
    query = "query ($id: UUID!) { device(id: $id) { fleet { name } } }"

    async with graphql_client(db_engine) as (client, _):
        with selects(db_engine) as statements:
            await gql(client, query, {"id": str(rows[0]["id"])})
            await gql(client, query, {"id": str(rows[0]["id"])})

    # Each request reads for itself (no bus, so no row cache either).
    assert len(statements) == 4, statements
