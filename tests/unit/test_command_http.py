"""The command API over HTTP, on the in-memory store: auth, headers, results, OpenAPI."""

from __future__ import annotations

import uuid

import pytest

from domain.identity import device_id
from infrastructure.eventstore.memory import InMemoryEventStore
from tests.support.api import SECRET, auth, running_app, send
from vigil.bootstrap import build_services


@pytest.fixture
async def api():
    store = InMemoryEventStore()
    services = build_services(store, jwt_secret=SECRET)
    async with running_app(services) as client:
        yield client, store


def serial() -> str:
    return f"SN-{uuid.uuid4().hex[:12]}"


async def test_registering_a_device_returns_its_id_version_and_position(api):
    client, store = api
    number = serial()
    response = await send(
        client, "RegisterDevice", {"serial_number": number, "hardware_profile": "jetson-orin"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["aggregate_id"] == str(device_id("acme", number))
    assert body["version"] == 1
    assert body["position"] == await store.head_position()
    assert body["events"] == ["Registered"]
    assert response.headers["etag"] == '"1"'


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_result(api):
    client, store = api
    body = {"serial_number": serial(), "hardware_profile": "jetson"}
    first = await send(client, "RegisterDevice", body, **auth(**{"Idempotency-Key": "k-1"}))
    device = first.json()["aggregate_id"]
    online = {"device_id": device}
    one = await send(client, "MarkDeviceOffline", online, **auth(**{"Idempotency-Key": "k-2"}))
    again = await send(client, "MarkDeviceOffline", online, **auth(**{"Idempotency-Key": "k-2"}))
    assert one.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] is True
    assert (again.json()["position"], again.json()["version"]) == (
        one.json()["position"],
        one.json()["version"],
    )
    assert await store.head_position() == 2


async def test_if_match_with_a_stale_version_is_refused_with_the_current_version(api):
    client, store = api
    created = await send(
        client, "RegisterDevice", {"serial_number": serial(), "hardware_profile": "jetson"}
    )
    device = created.json()["aggregate_id"]
    ok = await send(
        client, "MarkDeviceOffline", {"device_id": device}, **auth(**{"If-Match": '"1"'})
    )
    assert ok.status_code == 201
    stale = await send(
        client, "MarkDeviceOnline", {"device_id": device}, **auth(**{"If-Match": "1"})
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "version_mismatch"
    assert stale.json()["error"]["current_version"] == 2
    assert await store.head_position() == 2


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic abc"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "unauthenticated"),
        (auth(role="viewer"), 403, "forbidden"),
    ],
)
async def test_callers_without_valid_credentials_or_role_are_refused(api, headers, status, code):
    client, store = api
    response = await client.post(
        "/commands/RegisterDevice",
        json={"serial_number": serial(), "hardware_profile": "x"},
        headers=headers,
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert await store.head_position() == 0


async def test_admin_only_commands_refuse_operators(api):
    client, store = api
    created = await send(
        client, "RegisterDevice", {"serial_number": serial(), "hardware_profile": "jetson"}
    )
    response = await send(
        client,
        "DecommissionDevice",
        {"device_id": created.json()["aggregate_id"], "reason": "broken"},
        **auth(role="operator"),
    )
    assert response.status_code == 403
    assert await store.head_position() == 1


async def test_another_tenants_device_behaves_as_not_found(api):
    client, store = api
    created = await send(
        client, "RegisterDevice", {"serial_number": serial(), "hardware_profile": "jetson"}
    )
    device = created.json()["aggregate_id"]
    response = await send(
        client, "MarkDeviceOffline", {"device_id": device}, **auth(tenant="globex")
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await store.head_position() == 1


async def test_the_openapi_document_describes_every_command_body(api):
    client, _ = api
    document = (await client.get("/openapi.json")).json()
    from commands.catalog import COMMANDS

    assert set(document["paths"]) == {f"/commands/{name}" for name in COMMANDS}
    schemas = document["components"]["schemas"]
    register = schemas["RegisterDevice"]
    assert set(register["required"]) == {"serial_number", "hardware_profile"}
    start = schemas["StartRollout"]["properties"]
    assert start["phases"]["type"] == "array"


async def test_health_ready_and_metrics_answer(api):
    client, _ = api
    await send(client, "RegisterDevice", {"serial_number": serial(), "hardware_profile": "x"})
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["head_position"] == 1
    metrics = (await client.get("/metrics")).text
    assert 'vigil_commands_total{command="RegisterDevice",outcome="ok"} 1.0' in metrics
    assert "vigil_event_append_duration_seconds_count 1.0" in metrics
