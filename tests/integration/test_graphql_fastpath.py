"""The lean executor answers planned documents exactly as strawberry does.

A document's first request always runs through strawberry (it is parsed,
validated and cached then); repeats of plannable documents take the fast path.
So sending a document twice and comparing the bodies compares the two.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import devices, fleets
from read_api.pagination import encode_cursor
from tests.support.graphql import T0, device_row, fleet_row, gql, graphql_client, insert

pytestmark = pytest.mark.integration

DOCUMENTS = [
    "query ($id: UUID!) { device(id: $id) { id serialNumber status health fleetId lastSeenAt "
    "anomalyCount version position source __typename } }",
    'query ($id: UUID!) { a: device(id: $id) { s: serialNumber } b: fleet(id: "%(fleet)s") '
    "{ name rollout { phase } } }",
    "{ devices(first: 3) { edges { cursor node { serialNumber lastAnomaly { kind } } } "
    "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
    "query ($after: String) { devices(first: 2, after: $after) { edges { node { id } } } }",
    "{ fleets(last: 1) { edges { node { name createdAt } } } }",
    "query ($id: UUID!) { device(id: $id, minPosition: 0) { serialNumber } }",
    '{ device(id: "00000000-0000-0000-0000-000000000009") { id } }',  # NOT_FOUND
    "{ devices(first: 500) { edges { cursor } } }",  # BAD_USER_INPUT
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_repeats_answer_like_the_first_time(db_engine: AsyncEngine, document: str) -> None:
    fleet = fleet_row("acme", "north")
    rows = [device_row("acme", f"FP-{i}", fleet_id=fleet["id"]) for i in range(4)]
    await insert(db_engine, fleets, [fleet])
    await insert(db_engine, devices, rows)
    query = document % {"fleet": fleet["id"]} if "%(fleet)s" in document else document
    variables: dict[str, Any] = {"id": str(rows[1]["id"])} if "$id" in query else {}
    if "$after" in query:
        variables["after"] = None

    async with graphql_client(db_engine) as (client, app):
        first = await gql(client, query, variables)
        second = await gql(client, query, variables)
        third = await gql(client, query, variables)

    assert second == first == third
    entry = app.view.documents.get(query)
    assert entry is not None and entry.planned and entry.plan is not None


ALL_DEVICE_COLUMNS = (
    "id serialNumber hardwareProfile firmwareVersion status health fleetId desiredModelId "
    "desiredModelVersion reportedModelId reportedModelVersion lastInstallError lastSeenAt "
    "anomalyCount createdAt updatedAt version position"
)
# Pages whose nodes render straight from their rows (read_api.rowpages).
ROW_DOCUMENTS = [
    "{ devices(first: 10) { __typename edges { __typename cursor node { __typename "
    + ALL_DEVICE_COLUMNS
    + " } } pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor } } }",
    "{ d: devices(first: 2) { e: edges { c: cursor n: node { s: serialNumber st: status "
    "s: serialNumber } } p: pageInfo { e: endCursor n: hasNextPage } } }",
    "query ($after: String) { devices(first: 2, after: $after) { edges { node { id health } } "
    "pageInfo { hasPreviousPage startCursor } } }",
    "query ($before: String) { devices(last: 2, before: $before) { edges { cursor } "
    "pageInfo { hasNextPage hasPreviousPage } } }",
    "{ devices(last: 3) { edges { node { serialNumber lastSeenAt fleetId } } } }",
    "{ devices(first: 0) { edges { cursor } pageInfo { startCursor endCursor } } }",
    "{ devices(first: 500) { edges { cursor } } }",  # BAD_USER_INPUT
]


@pytest.mark.parametrize("document", ROW_DOCUMENTS)
async def test_pages_rendered_from_rows_answer_like_the_executor(
    db_engine: AsyncEngine, document: str
) -> None:
    fleet = fleet_row("acme", "north")
    rows = [
        device_row("acme", "RP-0", fleet_id=fleet["id"], firmware_version=None),
        device_row("acme", "RP-1", status="offline", health="degraded", last_seen_at=None),
        device_row("acme", "RP-2", reported_model_version="1.2.0", last_install_error="oom"),
        device_row("acme", "RP-3", updated_at=T0.replace(microsecond=123456)),
    ]
    others = [device_row("other", "RP-00"), device_row("other", "RP-4")]
    await insert(db_engine, fleets, [fleet])
    await insert(db_engine, devices, rows + others)
    variables = {"after": encode_cursor(("RP-0",)), "before": encode_cursor(("RP-3",))}
    variables = {name: value for name, value in variables.items() if f"${name}" in document}

    async with graphql_client(db_engine) as (client, app):
        first = await gql(client, document, variables)  # strawberry
        second = await gql(client, document, variables)  # the row plan

    assert second == first
    assert "RP-00" not in str(first) and "RP-4" not in str(first)
    entry = app.view.documents.get(document)
    assert entry is not None and entry.plan is not None
    assert entry.plan.roots[0].rows is not None


async def test_a_value_the_schema_does_not_know_goes_to_the_executor(
    db_engine: AsyncEngine,
) -> None:
    await insert(db_engine, devices, [device_row("acme", "UV-0", status="exploded")])
    document = "{ devices(first: 5) { edges { node { serialNumber status } } } }"
    async with graphql_client(db_engine) as (client, app):
        first = await gql(client, document)
        second = await gql(client, document)

    assert second == first
    assert first["data"] is None and first["errors"][0]["extensions"]["code"]
    entry = app.view.documents.get(document)
    assert entry is not None and entry.plan is not None and entry.plan.roots[0].rows is not None


async def test_pages_selecting_more_than_columns_render_from_objects(
    db_engine: AsyncEngine,
) -> None:
    document = "{ devices(first: 3) { edges { node { serialNumber lastAnomaly { kind } } } } }"
    async with graphql_client(db_engine) as (client, app):
        await gql(client, document)
        await gql(client, document)

    entry = app.view.documents.get(document)
    assert entry is not None and entry.plan is not None and entry.plan.roots[0].rows is None


async def test_documents_needing_the_executor_are_not_planned(db_engine: AsyncEngine) -> None:
    query = "{ devices(first: 2) { totalCount nodes { fleet { name } } } }"
    async with graphql_client(db_engine) as (client, app):
        first = await gql(client, query)
        second = await gql(client, query)

    assert first == second == {"data": {"devices": {"totalCount": 0, "nodes": []}}}
    entry = app.view.documents.get(query)
    assert entry is not None and entry.planned and entry.plan is None
