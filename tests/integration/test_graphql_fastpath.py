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
from tests.support.graphql import device_row, fleet_row, gql, graphql_client, insert

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


async def test_documents_needing_the_executor_are_not_planned(db_engine: AsyncEngine) -> None:
    query = "{ devices(first: 2) { totalCount nodes { fleet { name } } } }"
    async with graphql_client(db_engine) as (client, app):
        first = await gql(client, query)
        second = await gql(client, query)

    assert first == second == {"data": {"devices": {"totalCount": 0, "nodes": []}}}
    entry = app.view.documents.get(query)
    assert entry is not None and entry.planned and entry.plan is None
