"""Abusive documents are refused with QUERY_TOO_COMPLEX before anything runs; bugs are
masked outside debug mode; introspection can be switched off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.database import create_engine
from read_api.limits import QueryLimits
from tests.support.api import auth
from tests.support.graphql import codes, gql, graphql_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def bare_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """A database without the read-model tables: any query that reaches it fails."""
    engine = create_engine(sqlite_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def nested_fleets(levels: int) -> str:
    inner = "name"
    for _ in range(levels):
        inner = f"devices(first: 1) {{ nodes {{ fleet {{ {inner} }} }} }}"
    return f"{{ fleets(first: 1) {{ nodes {{ {inner} }} }} }}"


async def test_deep_nesting_is_refused(bare_engine: AsyncEngine) -> None:
    async with graphql_client(bare_engine) as (client, _):
        body = await gql(client, nested_fleets(4))

    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "deep" in body["errors"][0]["message"]
    assert body.get("data") is None


async def test_alias_bombs_are_refused(bare_engine: AsyncEngine) -> None:
    aliases = " ".join(f"a{i}: viewer {{ tenant }}" for i in range(50))
    async with graphql_client(bare_engine) as (client, _):
        body = await gql(client, f"{{ {aliases} }}")

    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "50 aliases" in body["errors"][0]["message"]


async def test_aliases_hidden_in_fragments_count_too(bare_engine: AsyncEngine) -> None:
    aliases = " ".join(f"t{i}: tenant" for i in range(30))
    query = f"{{ viewer {{ ...F }} }} fragment F on Viewer {{ {aliases} }}"
    async with graphql_client(bare_engine) as (client, _):
        body = await gql(client, query)

    assert codes(body) == ["QUERY_TOO_COMPLEX"]


async def test_documents_with_too_many_tokens_are_refused(bare_engine: AsyncEngine) -> None:
    fields = " ".join(["tenant"] * 2100)
    async with graphql_client(bare_engine) as (client, _):
        body = await gql(client, f"{{ viewer {{ {fields} }} }}")

    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "tokens" in body["errors"][0]["message"]


async def test_oversized_documents_are_refused(bare_engine: AsyncEngine) -> None:
    padding = "#" + "x" * 25_000 + "\n"
    async with graphql_client(bare_engine) as (client, _):
        body = await gql(client, padding + "{ viewer { tenant } }")
        huge = await client.post(
            "/graphql",
            content=b'{"query": "' + b"x" * 200_000 + b'"}',
            headers={**auth(), "Content-Type": "application/json"},
        )

    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert huge.status_code == 413


async def test_too_many_nodes_through_nested_pages_are_refused(bare_engine: AsyncEngine) -> None:
    query = """{ fleets(first: 100) { nodes { devices(first: 100) { nodes {
        fleet { devices(first: 100) { nodes { serialNumber } } } } } } } }"""
    async with graphql_client(bare_engine) as (client, _):
        body = await gql(client, query)

    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "nodes" in body["errors"][0]["message"]


async def test_limits_are_configurable(bare_engine: AsyncEngine) -> None:
    limits = QueryLimits(max_depth=1)
    async with graphql_client(bare_engine, limits=limits) as (client, _):
        body = await gql(client, "{ viewer { tenant } }")

    assert codes(body) == ["QUERY_TOO_COMPLEX"]


async def test_a_refused_document_stays_refused_when_cached(bare_engine: AsyncEngine) -> None:
    async with graphql_client(bare_engine) as (client, _):
        first = await gql(client, nested_fleets(4))
        second = await gql(client, nested_fleets(4))

    assert codes(first) == codes(second) == ["QUERY_TOO_COMPLEX"]


async def test_invalid_documents_carry_parse_and_validation_codes(bare_engine: AsyncEngine) -> None:
    async with graphql_client(bare_engine) as (client, _):
        syntax = await gql(client, "{ viewer { tenant }")
        unknown = await gql(client, "{ viewer { password } }")
        variable = await gql(client, "query ($id: UUID!) { device(id: $id) { id } }", {"id": "x"})

    assert codes(syntax) == ["GRAPHQL_PARSE_FAILED"]
    assert codes(unknown) == ["GRAPHQL_VALIDATION_FAILED"]
    assert codes(variable) == ["BAD_USER_INPUT"]


async def test_bugs_are_masked_unless_debugging(bare_engine: AsyncEngine) -> None:
    query = "{ devices { nodes { id } } }"
    async with graphql_client(bare_engine) as (client, _):
        masked = await gql(client, query)
    async with graphql_client(bare_engine, debug=True) as (client, _):
        shown = await gql(client, query)

    assert codes(masked) == ["INTERNAL_SERVER_ERROR"]
    assert masked["errors"][0]["message"] == "Unexpected error."
    assert codes(shown) == ["INTERNAL_SERVER_ERROR"]
    assert "devices" in shown["errors"][0]["message"]


async def test_introspection_can_be_switched_off(bare_engine: AsyncEngine) -> None:
    query = "{ __schema { queryType { name } } }"
    async with graphql_client(bare_engine) as (client, _):
        allowed = await gql(client, query)
        ide = await client.get("/graphql", headers={"Accept": "text/html"})
    async with graphql_client(bare_engine, introspection=False) as (client, _):
        refused = await gql(client, query)
        typo = await gql(client, "{ viewr { tenant } }")
        no_ide = await client.get("/graphql", headers={"Accept": "text/html"})

    assert allowed["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    assert set(codes(refused)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection" in refused["errors"][0]["message"].lower()
    assert "Did you mean" not in typo["errors"][0]["message"]
    assert no_ide.status_code != 200
