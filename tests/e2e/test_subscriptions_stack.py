"""Subscriptions through ``vigil up``: commands over HTTP, updates over graphql-transport-ws.

The whole embedded stack in its own process (nats-server, SQLite read models,
the projector and the API); the test is only a client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.graphql_ws import GraphQLWS
from tests.support.processes import VIGIL, free_port, spawn_vigil, stop, wait_ready

pytestmark = pytest.mark.integration

DEVICE = "subscription D($id: UUID!) { deviceUpdated(id: $id) { id status anomalyCount version } }"
EVENTS = """
subscription E($id: UUID, $after: Long!) {
  events(aggregateId: $id, after: $after) { position aggregateId version type actor }
}
"""


class Stack:
    def __init__(self, base: str, env: dict[str, str]) -> None:
        self.base = base
        self.ws = base.replace("http://", "ws://") + "/graphql"
        self.env = env

    def token(self, tenant: str, role: str = "operator") -> str:
        out = subprocess.run(
            [VIGIL, "token", "--role", role, "--tenant", tenant],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def bearer(self, tenant: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(tenant, 'viewer')}"}

    async def command(self, tenant: str, name: str, body: dict[str, object]) -> dict:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.base}/commands/{name}",
                json=body,
                headers={"Authorization": f"Bearer {self.token(tenant)}"},
            )
        assert response.status_code in (200, 201), response.text
        result: dict = response.json()
        return result


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    port = free_port()
    env = {"VIGIL_DATA_DIR": str(tmp_path / "data"), "VIGIL_PORT": str(port)}
    log = tmp_path / "vigil.log"
    proc = spawn_vigil(["up"], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc, log)
        yield Stack(base, env)
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0, log.read_text()[-3000:]


async def test_vigil_up_serves_device_updates_and_events_to_their_tenant_only(stack):
    registered = await stack.command(
        "acme",
        "RegisterDevice",
        {"serial_number": f"SN-{uuid.uuid4().hex[:8]}", "hardware_profile": "orin"},
    )
    device = registered["aggregate_id"]
    async with (
        GraphQLWS.connect(stack.ws, stack.bearer("acme")) as acme,
        GraphQLWS.connect(stack.ws, stack.bearer("globex")) as globex,
    ):
        await acme.subscribe("d", DEVICE, {"id": device})
        await acme.subscribe("e", EVENTS, {"id": device, "after": 0})
        await globex.subscribe("spy-d", DEVICE, {"id": device})
        await globex.subscribe("spy-e", EVENTS, {"after": 0})
        now = (await acme.data("d"))["deviceUpdated"]  # as soon as the projector has it
        assert (now["status"], now["version"]) == ("REGISTERED", 1)
        (first,) = (await acme.data("e"))["events"]
        assert (first["type"], first["position"]) == ("Registered", registered["position"])

        raised = await stack.command(
            "acme", "RaiseAnomaly", {"device_id": device, "kind": "heat", "severity": "warning"}
        )
        (event,) = (await acme.data("e"))["events"]
        assert (event["type"], event["position"], event["version"]) == (
            "AnomalyRaised",
            raised["position"],
            2,
        )
        assert (await acme.data("d"))["deviceUpdated"]["anomalyCount"] == 1

        await globex.ping()
        assert globex.pending("spy-d") == 0 and globex.pending("spy-e") == 0


async def test_vigil_up_refuses_a_subscriber_without_a_valid_token(stack):
    async with GraphQLWS.connect(stack.ws, init=False) as client:
        await client.send({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})
        closed = await client.closed()
    assert closed.code == 4403
