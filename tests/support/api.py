"""Run the real Starlette app in-process (lifespan included) and talk to it over httpx."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from commands.auth import issue_token
from vigil.app import create_app
from vigil.bootstrap import Services

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def token(role: str = "admin", tenant: str = "acme", subject: str = "tester") -> str:
    return issue_token(SECRET, subject=subject, tenant=tenant, role=role)


def auth(role: str = "admin", tenant: str = "acme", **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, tenant)}", **headers}


@contextlib.asynccontextmanager
async def running_app(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async def opened() -> Services:
        return services

    app = create_app(opened)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vigil") as client:
            yield client


async def send(
    client: httpx.AsyncClient, command: str, body: Any, **headers: str
) -> httpx.Response:
    merged = auth() | headers if "Authorization" not in headers else headers
    return await client.post(f"/commands/{command}", json=body, headers=merged)
