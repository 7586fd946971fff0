"""Helpers for GraphQL tests: seed read-model rows, mount the app, send queries."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from commands.auth import Authenticator
from infrastructure.changes import ChangeBus
from infrastructure.repository import Repository
from projections.tables import devices, fleet_device_counts, fleets, models, projection_checkpoints
from read_api.app import GraphQLApp, create_graphql_app
from tests.support.api import SECRET, token

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_positions = itertools.count(1)


def device_row(tenant: str, serial: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": tenant,
        "id": uuid4(),
        "serial_number": serial,
        "hardware_profile": "orin-nx",
        "firmware_version": "5.1",
        "status": "online",
        "fleet_id": None,
        "desired_model_id": None,
        "desired_model_version": None,
        "reported_model_id": None,
        "reported_model_version": None,
        "last_install_error": None,
        "last_seen_at": T0,
        "health": "healthy",
        "anomaly_count": 0,
        "last_anomaly_at": None,
        "last_anomaly_kind": None,
        "last_anomaly_severity": None,
        "created_at": T0,
        "updated_at": T0 + timedelta(minutes=1),
        "version": 2,
        "position": next(_positions),
    }
    row.update(overrides)
    return row


def fleet_row(tenant: str, name: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": tenant,
        "id": uuid4(),
        "name": name,
        "current_model_id": None,
        "current_model_version": None,
        "rollout_count": 0,
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
        "position": next(_positions),
    }
    row.update(overrides)
    return row


def model_row(tenant: str, name: str, version: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": tenant,
        "id": uuid4(),
        "name": name,
        "model_version": version,
        "sha256": "ab" * 32,
        "size_bytes": 5_000_000_000,
        "input_signature": {"x": {"dtype": "float32", "shape": [None, 3]}},
        "output_signature": {"y": {"dtype": "float32", "shape": [None]}},
        "artifact_name": None,
        "stage": "registered",
        "deprecation_reason": None,
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
        "position": next(_positions),
    }
    row.update(overrides)
    return row


async def insert(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        async with engine.begin() as conn:
            await conn.execute(table.insert(), rows)


async def seed_fleet_counts(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Fleet device counts as the devices projection would keep them for ``rows``."""
    counts: dict[tuple[str, UUID, str, str], int] = {}
    for row in rows:
        if row["fleet_id"] is None:
            continue
        for dimension, key in (
            ("status", row["status"]),
            ("model", row["reported_model_version"] or ""),
        ):
            index = (row["tenant_id"], row["fleet_id"], dimension, key)
            counts[index] = counts.get(index, 0) + 1
    await insert(
        engine,
        fleet_device_counts,
        [
            {"tenant_id": t, "fleet_id": f, "dimension": d, "key": k, "count": n}
            for (t, f, d, k), n in counts.items()
        ],
    )


async def set_checkpoint(engine: AsyncEngine, name: str, position: int) -> None:
    table = projection_checkpoints
    async with engine.begin() as conn:
        updated = await conn.execute(
            table.update().where(table.c.name == name).values(position=position, updated_at=T0)
        )
        if updated.rowcount == 0:
            await conn.execute(
                table.insert().values(name=name, position=position, generation=1, updated_at=T0)
            )


SEEDED = (devices, fleets, models)


@contextlib.asynccontextmanager
async def graphql_client(
    engine: AsyncEngine,
    *,
    repository: Repository | None = None,
    bus: ChangeBus | None = None,
    **options: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, GraphQLApp]]:
    """The GraphQL app mounted at /graphql in a bare Starlette app, with an httpx client."""
    app = create_graphql_app(
        engine=engine,
        repository=repository,
        authenticator=Authenticator(SECRET),
        bus=bus,
        **options,
    )
    starlette = Starlette(routes=[Route("/graphql", app, methods=["GET", "POST"])])
    transport = httpx.ASGITransport(app=starlette)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://vigil") as client:
            yield client, app
    finally:
        await app.close()


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    tenant: str = "acme",
    role: str = "viewer",
    headers: dict[str, str] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    """POST ``query``; asserts the HTTP status and returns the JSON body."""
    sent = {"Authorization": f"Bearer {token(role, tenant)}", **(headers or {})}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=sent
    )
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
