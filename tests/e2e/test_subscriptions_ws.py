"""Subscriptions end to end: a real uvicorn server, real JetStream, a websocket client.

The client speaks graphql-transport-ws with the ``websockets`` package; the
events it receives are committed through the command service, as the HTTP
API would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from commands.catalog import COMMANDS
from commands.catalog.devices import RaiseAnomaly, RegisterDevice
from commands.spec import Context
from infrastructure.changes import LocalChangeBus
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from projections.service import Projector
from read_api.subscriptions import SubscriptionHub, SubscriptionLimits, build_hub
from tests.support.api import SECRET, token
from tests.support.graphql_ws import GraphQLWS, read_api_app, serve
from vigil.bootstrap import build_services

pytestmark = pytest.mark.integration

EVENTS = """
subscription Events($after: Long!, $type: String, $id: UUID) {
  events(after: $after, aggregateType: $type, aggregateId: $id) {
    position aggregateType aggregateId version type actor occurredAt data
  }
}
"""


class Fleetside:
    """Commits real device events for a tenant through the command service."""

    def __init__(self, services: Any, tenant: str) -> None:
        self.service = services.service
        self.tenant = tenant

    async def run(self, name: str, body: Any) -> int:
        ctx = Context(self.tenant, f"op-{self.tenant}", datetime.now(UTC))
        outcome = await self.service.execute(COMMANDS[name], body, ctx)
        return int(outcome.result.position)

    async def register(self) -> uuid.UUID:
        body = RegisterDevice(
            serial_number=f"SN-{uuid.uuid4().hex[:12]}", hardware_profile="jetson"
        )
        ctx = Context(self.tenant, f"op-{self.tenant}", datetime.now(UTC))
        outcome = await self.service.execute(COMMANDS["RegisterDevice"], body, ctx)
        return outcome.result.ref.id

    async def anomaly(self, device_id: uuid.UUID, n: int = 0) -> int:
        return await self.run(
            "RaiseAnomaly", RaiseAnomaly(device_id=device_id, kind=f"k{n}", severity="warning")
        )


@pytest.fixture
async def services(jetstream_store):
    services = build_services(jetstream_store, jwt_secret=SECRET)
    yield services
    await services.repository.drain()


@pytest.fixture
def bus() -> LocalChangeBus:
    return LocalChangeBus()


@pytest.fixture
async def hub(nats_client, jetstream_store, bus, engine) -> AsyncIterator[SubscriptionHub]:
    hub = build_hub(
        jetstream_store,
        build_mapper(),
        bus,
        nc=nats_client,
        engine=engine,
        limits=SubscriptionLimits(per_connection=5),
    )
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
async def engine(sqlite_url) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    try:
        await migrations.upgrade_async(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def url(hub, bus, engine) -> AsyncIterator[str]:
    async with read_api_app(hub, engine, bus) as app, serve(app) as url:
        yield url


@pytest.fixture
async def projector(engine, nats_server, jetstream_config, bus) -> AsyncIterator[Projector]:
    """The real projector, publishing its notices to the hub's bus after each commit."""
    projector = Projector(engine, nats_server, jetstream_config, bus=bus, idle_timeout=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await running


def bearer(tenant: str = "acme", role: str = "viewer") -> dict[str, str]:
    return {"authorization": f"Bearer {token(role, tenant)}"}


async def test_a_client_that_reconnects_from_its_last_position_sees_every_event_once(url, services):
    acme = Fleetside(services, "acme")
    device = await acme.register()
    before = [await acme.anomaly(device, n) for n in range(3)]
    received: list[tuple[int, int]] = []  # (position, version)

    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("1", EVENTS, {"after": 0, "id": str(device)})
        while len(received) < 4:  # registration + 3 anomalies, replayed
            received += [(e["position"], e["version"]) for e in (await client.data("1"))["events"]]
        live = await acme.anomaly(device, 3)
        batch = (await client.data("1"))["events"]
        assert [e["position"] for e in batch] == [live]
        received += [(e["position"], e["version"]) for e in batch]

    while_away = [await acme.anomaly(device, n) for n in range(4, 7)]
    last = received[-1][0]
    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("again", EVENTS, {"after": last, "id": str(device)})
        while len(received) < 8:
            received += [
                (e["position"], e["version"]) for e in (await client.data("again"))["events"]
            ]
        after_reconnect = await acme.anomaly(device, 7)
        received += [(e["position"], e["version"]) for e in (await client.data("again"))["events"]]

    positions = [p for p, _ in received]
    assert positions == sorted(set(positions)), "no duplicate, in order"
    assert positions[1:] == [*before, live, *while_away, after_reconnect]
    assert [v for _, v in received] == list(range(1, 10)), "no gap: every version once"


async def test_payload_names_the_event_its_aggregate_and_who_did_it(url, services):
    acme = Fleetside(services, "acme")
    device = await acme.register()
    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("1", EVENTS, {"after": 0, "type": "device"})
        (registered,) = (await client.data("1"))["events"]
    assert registered["aggregateType"] == "device"
    assert registered["aggregateId"] == str(device)
    assert registered["version"] == 1
    assert registered["type"] == "Registered"
    assert registered["actor"] == "op-acme"
    assert registered["data"]["hardware_profile"] == "jetson"
    assert datetime.fromisoformat(registered["occurredAt"]).tzinfo is not None


async def test_tenant_b_never_receives_tenant_a_events(url, services):
    acme, globex = Fleetside(services, "acme"), Fleetside(services, "globex")
    async with (
        GraphQLWS.connect(url, bearer("acme")) as a,
        GraphQLWS.connect(url, bearer("globex")) as b,
    ):
        await a.subscribe("a", EVENTS, {"after": 0})
        await b.subscribe("b", EVENTS, {"after": 0})
        acme_device = await acme.register()
        await acme.anomaly(acme_device)
        globex_device = await globex.register()
        seen_by_b = (await b.data("b"))["events"]
        seen_by_a = (await a.data("a"))["events"] + (await a.data("a"))["events"]
    assert {e["aggregateId"] for e in seen_by_b} == {str(globex_device)}
    assert {e["aggregateId"] for e in seen_by_a} == {str(acme_device)}


async def test_another_tenants_aggregate_id_yields_nothing(url, services):
    acme, globex = Fleetside(services, "acme"), Fleetside(services, "globex")
    acme_device = await acme.register()
    async with GraphQLWS.connect(url, bearer("globex")) as b:
        await b.subscribe("spy", EVENTS, {"after": 0, "id": str(acme_device)})
        await b.subscribe("own", EVENTS, {"after": 0})
        await acme.anomaly(acme_device)
        own = await globex.register()
        assert (await b.data("own"))["events"][0]["aggregateId"] == str(own)
        await b.ping()
        assert b.pending("spy") == 0, "the other tenant's device produced nothing"


@pytest.mark.parametrize(
    "payload",
    [{}, {"authorization": "Bearer not-a-token"}, {"authorization": "Basic abc"}],
    ids=["no-token", "bad-token", "wrong-scheme"],
)
async def test_connection_init_without_a_valid_token_is_refused_with_4403(url, payload):
    async with GraphQLWS.connect(url, init=False) as client:
        await client.send({"type": "connection_init", "payload": payload})
        closed = await client.closed()
    assert (closed.code, closed.reason) == (4403, "Forbidden")


async def test_subscribing_before_connection_init_is_refused_with_4401(url):
    async with GraphQLWS.connect(url, init=False) as client:
        await client.subscribe("1", EVENTS, {"after": 0})
        closed = await client.closed()
    assert closed.code == 4401


async def test_a_connection_may_hold_only_its_limit_of_subscriptions(url, hub):
    async with GraphQLWS.connect(url, bearer()) as client:
        for n in range(hub.limits.per_connection):
            await client.subscribe(str(n), EVENTS, {"after": 0, "id": str(uuid.uuid4())})
        await client.subscribe("one-too-many", EVENTS, {"after": 0})
        refused = await client.next("one-too-many")
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

        await client.complete("0")
        await client.subscribe("in-its-place", EVENTS, {"after": 0, "type": "fleet"})
        await client.ping()
        assert client.pending("in-its-place") == 0, "accepted: no error came back"
        assert hub.stats()["subscribers"] == hub.limits.per_connection


async def test_subscribers_with_the_same_query_variables_and_tenant_share_one_execution(
    url, hub, services, jetstream_store
):
    acme = Fleetside(services, "acme")
    device = await acme.register()
    variables = {"after": await jetstream_store.head_position(), "id": str(device)}
    started = hub.fanout.executions_started
    async with (
        GraphQLWS.connect(url, bearer()) as one,
        GraphQLWS.connect(url, bearer()) as two,
    ):
        for client in (one, two):
            for n in range(3):
                await client.subscribe(f"s{n}", EVENTS, variables)
            await client.ping()
        position = await acme.anomaly(device)
        for client in (one, two):
            for n in range(3):
                assert (await client.data(f"s{n}"))["events"][0]["position"] == position
        assert hub.stats()["subscribers"] == 6
    assert hub.fanout.executions_started == started + 1


DEVICE = """
subscription Device($id: UUID!) {
  deviceUpdated(id: $id) { id status anomalyCount version position }
}
"""


async def test_device_updated_fires_once_the_projector_has_committed_the_change(
    url, services, projector
):
    acme = Fleetside(services, "acme")
    device = await acme.register()
    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("d", DEVICE, {"id": str(device)})
        registered = (await client.data("d"))["deviceUpdated"]  # now, or once projected
        assert (registered["status"], registered["version"]) == ("REGISTERED", 1)
        position = await acme.anomaly(device)
        raised = (await client.data("d"))["deviceUpdated"]
    assert (raised["anomalyCount"], raised["version"], raised["position"]) == (1, 2, position)


async def test_bad_arguments_come_back_as_coded_errors_and_end_the_subscription(url):
    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("bad", EVENTS, {"after": 0, "type": "spaceship"})
        failed = await client.next("bad")
        assert failed["type"] == "next"
        assert failed["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert (await client.next("bad"))["type"] == "complete"
        await client.subscribe("typo", "subscription { events(after: 0) { nope } }")
        refused = await client.next("typo")
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"]
