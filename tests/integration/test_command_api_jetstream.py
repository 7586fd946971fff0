"""The command API on real JetStream: bad input writes nothing, racing writers are serialised."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import nats
import pytest

from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.snapshots_kv import KeyValueSnapshotStore
from tests.support.api import SECRET, auth, running_app, send
from vigil.bootstrap import build_services

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def api_instance(nats_url, config, **kwargs):
    """One API process worth of state: its own connection, cache and locks."""
    nc = await nats.connect(nats_url)
    store = JetStreamEventStore(nc, config)
    snapshots = await KeyValueSnapshotStore.open(nc.jetstream(), config)
    services = build_services(store, jwt_secret=SECRET, snapshots=snapshots, nc=nc, **kwargs)
    async with running_app(services) as client:
        client.services = services  # type: ignore[attr-defined]
        yield client, store


@pytest.fixture
async def api(nats_server, jetstream_config):
    async with api_instance(nats_server, jetstream_config, max_body_bytes=2048) as pair:
        yield pair


async def stream_messages(nats_client, config) -> int:
    info = await nats_client.jetstream().stream_info(config.stream)
    return info.state.messages


async def registered(client) -> str:
    response = await send(
        client,
        "RegisterDevice",
        {"serial_number": f"SN-{uuid.uuid4().hex[:10]}", "hardware_profile": "jetson"},
    )
    assert response.status_code == 201, response.text
    return response.json()["aggregate_id"]


MODEL = {
    "name": "detector",
    "version": "1.0.0",
    "sha256": "a" * 64,
    "size_bytes": 10,
    "input_signature": {"x": {"dtype": "float32", "shape": [None, 3]}},
    "output_signature": {"y": {"dtype": "float32", "shape": [None]}},
}


def bad_inputs(device: str) -> list[tuple[str, str, object, dict[str, str], int, str, str | None]]:
    """(case, command, body, headers, status, error code, field) for every way to get it wrong."""
    missing_field = {"hardware_profile": "jetson"}
    mistyped = {"serial_number": 42, "hardware_profile": "jetson"}
    return [
        ("malformed JSON", "RegisterDevice", b"{not json", {}, 400, "malformed_json", None),
        (
            "missing field",
            "RegisterDevice",
            missing_field,
            {},
            400,
            "invalid_body",
            "serial_number",
        ),
        ("mistyped field", "RegisterDevice", mistyped, {}, 400, "invalid_body", "serial_number"),
        (
            "unknown field",
            "MarkDeviceOffline",
            {"device_id": device, "colour": "red"},
            {},
            400,
            "invalid_body",
            "colour",
        ),
        (
            "not a uuid",
            "MarkDeviceOffline",
            {"device_id": "nope"},
            {},
            400,
            "invalid_body",
            "device_id",
        ),
        (
            "nested mistyped",
            "RegisterModel",
            {**MODEL, "input_signature": {"x": {"dtype": "float32", "shape": "3"}}},
            {},
            400,
            "invalid_body",
            "input_signature[...].shape",
        ),
        ("unknown command", "LaunchRocket", {}, {}, 404, "unknown_command", None),
        (
            "body over the limit",
            "RaiseAnomaly",
            {"device_id": device, "kind": "x", "severity": "info", "detail": "y" * 4096},
            {},
            413,
            "body_too_large",
            None,
        ),
        (
            "wrong If-Match",
            "MarkDeviceOffline",
            {"device_id": device},
            {"If-Match": "7"},
            409,
            "version_mismatch",
            None,
        ),
        (
            "bad If-Match",
            "MarkDeviceOffline",
            {"device_id": device},
            {"If-Match": "latest"},
            400,
            "invalid_header",
            "If-Match",
        ),
        (
            "bad Idempotency-Key",
            "MarkDeviceOffline",
            {"device_id": device},
            {"Idempotency-Key": "has spaces"},
            400,
            "invalid_header",
            "Idempotency-Key",
        ),
        (
            "unknown aggregate",
            "MarkDeviceOffline",
            {"device_id": str(uuid.uuid4())},
            {},
            404,
            "not_found",
            None,
        ),
        (
            "domain rule",
            "RaiseAnomaly",
            {"device_id": device, "kind": "heat", "severity": "apocalyptic"},
            {},
            422,
            "invalid_value",
            "severity",
        ),
        (
            "domain rule",
            "RemoveDeviceFromFleet",
            {"device_id": device},
            {"If-Match": "1"},
            422,
            "device_not_in_fleet",
            None,
        ),
        (
            "naive occurred_at",
            "MarkDeviceOffline",
            {"device_id": device, "occurred_at": "2026-01-01T00:00:00"},
            {},
            422,
            "invalid_value",
            "occurred_at",
        ),
        (
            "another tenant",
            "MarkDeviceOffline",
            {"device_id": device},
            {"Authorization": auth(tenant="globex")["Authorization"]},
            404,
            "not_found",
            None,
        ),
        (
            "no token",
            "MarkDeviceOffline",
            {"device_id": device},
            {"Authorization": ""},
            401,
            "unauthenticated",
            None,
        ),
        (
            "viewer",
            "MarkDeviceOffline",
            {"device_id": device},
            {"Authorization": auth(role="viewer")["Authorization"]},
            403,
            "forbidden",
            None,
        ),
    ]


async def test_every_bad_input_gets_its_4xx_and_leaves_the_stream_unchanged(
    api, nats_client, jetstream_config
):
    client, store = api
    device = await registered(client)
    before = await stream_messages(nats_client, jetstream_config)
    for case, command, body, headers, status, code, field in bad_inputs(device):
        merged = {**auth(), **headers}
        if merged.get("Authorization") == "":
            del merged["Authorization"]
        if isinstance(body, bytes):
            response = await client.post(f"/commands/{command}", content=body, headers=merged)
        else:
            response = await client.post(f"/commands/{command}", json=body, headers=merged)
        assert response.status_code == status, (case, response.text)
        error = response.json()["error"]
        assert error["message"], case
        if code is not None:
            assert error["code"] == code, (case, error)
        if field is not None:
            assert error.get("field") == field, (case, error)
    assert await stream_messages(nats_client, jetstream_config) == before
    assert await store.current_version(store_ref(device)) == 1


def store_ref(device: str):
    from infrastructure.eventstore.port import StreamRef

    return StreamRef("acme", "device", uuid.UUID(device))


async def test_racing_writers_on_two_api_instances_take_each_version_exactly_once(
    nats_server, jetstream_config, nats_client
):
    async with (
        api_instance(nats_server, jetstream_config) as (first, store),
        api_instance(nats_server, jetstream_config) as (second, _),
    ):
        device = await registered(first)
        wins: list[int] = []
        losses: list[int] = []

        async def writer(client, n: int) -> None:
            version = 1
            for attempt in range(40):
                response = await send(
                    client,
                    "RaiseAnomaly",
                    {"device_id": device, "kind": f"w{n}", "severity": "info"},
                    **auth(**{"If-Match": str(version)}),
                )
                if response.status_code == 201:
                    wins.append(response.json()["version"])
                    return
                assert response.status_code == 409, response.text
                losses.append(attempt)
                version = response.json()["error"]["current_version"]
            raise AssertionError(f"writer {n} never won")

        await asyncio.gather(*(writer(first if n % 2 else second, n) for n in range(16)))
        commits = [c async for c in store.read_all()]

    assert sorted(wins) == list(range(2, 18)), "each version taken exactly once"
    assert losses, "writers really raced"
    assert [c.version for c in commits] == list(range(1, 18)), "one commit per version"


async def test_the_api_snapshots_aggregates_into_the_kv_bucket_every_n_events(
    nats_server, jetstream_config
):
    async with api_instance(nats_server, jetstream_config, snapshot_every=5) as (client, _):
        device = await registered(client)
        for i in range(6):
            response = await send(
                client, "RaiseAnomaly", {"device_id": device, "kind": f"k{i}", "severity": "info"}
            )
            assert response.status_code == 201
        await client.services.repository.drain()  # snapshot writes run after the response
        nc = await nats.connect(nats_server)
        try:
            snapshots = await KeyValueSnapshotStore.open(nc.jetstream(), jetstream_config)
            record = await snapshots.get(store_ref(device))
        finally:
            await nc.close()
    assert record is not None and record.version == 5


async def test_encrypted_payloads_are_unreadable_in_the_stream(
    nats_server, jetstream_config, nats_client
):
    from infrastructure.eventstore.codec import build_mapper, new_cipher_key

    mapper = build_mapper("zstd", new_cipher_key())
    async with api_instance(nats_server, jetstream_config, mapper=mapper) as (client, _):
        response = await send(
            client,
            "RegisterDevice",
            {"serial_number": "SN-PLAINTEXT-CHECK", "hardware_profile": "x"},
        )
        assert response.status_code == 201
    info = await nats_client.jetstream().stream_info(jetstream_config.stream)
    raw = await nats_client.jetstream().get_msg(jetstream_config.stream, info.state.last_seq)
    assert b"SN-PLAINTEXT-CHECK" not in raw.data
