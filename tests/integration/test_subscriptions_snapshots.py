"""deviceUpdated and fleetUpdated over a real websocket, on PostgreSQL and SQLite read models.

The tests play the projector: they commit a row change, then publish its
``ChangeNotice``, in that order, as ``projections`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from infrastructure.changes import ChangeBus, ChangeNotice, LocalChangeBus
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.memory import InMemoryEventStore
from projections.tables import devices, fleets
from read_api.subscriptions import SubscriptionHub, build_hub
from tests.support.api import token
from tests.support.graphql import T0, device_row, fleet_row, insert
from tests.support.graphql_ws import GraphQLWS, read_api_app, serve

pytestmark = pytest.mark.integration

DEVICE = """
subscription Device($id: UUID!) {
  deviceUpdated(id: $id) { id status anomalyCount version position }
}
"""
FLEET = """
subscription Fleet($id: UUID!) {
  fleetUpdated(id: $id) {
    id name version
    rollout { status modelVersion phases phase percent targeted succeeded failed }
  }
}
"""


@pytest.fixture
def bus() -> LocalChangeBus:
    return LocalChangeBus()


@pytest.fixture
async def hub(db_engine, bus) -> AsyncIterator[SubscriptionHub]:
    hub = build_hub(InMemoryEventStore(), build_mapper(), bus, engine=db_engine)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
async def url(hub, db_engine, bus) -> AsyncIterator[str]:
    async with read_api_app(hub, db_engine, bus) as app, serve(app) as url:
        yield url


def bearer(tenant: str = "acme") -> dict[str, str]:
    return {"authorization": f"Bearer {token('viewer', tenant)}"}


class Projector:
    """Commits a row change, then tells the bus, like the real projector."""

    def __init__(self, engine: Any, bus: ChangeBus) -> None:
        self.engine = engine
        self.bus = bus
        self.position = 1000

    async def change(self, table: sa.Table, row: dict[str, Any], **values: Any) -> None:
        self.position += 1
        row.update(values, version=row["version"] + 1, position=self.position)
        row["updated_at"] = row["updated_at"] + timedelta(seconds=1)
        async with self.engine.begin() as conn:
            await conn.execute(
                table.update()
                .where(table.c.tenant_id == row["tenant_id"], table.c.id == row["id"])
                .values(**row)
            )
        await self.notify(table, row)

    async def notify(self, table: sa.Table, row: dict[str, Any]) -> None:
        kind = "device" if table is devices else "fleet"
        notice = ChangeNotice(
            table.name, row["tenant_id"], kind, row["id"], row["version"], row["position"]
        )
        await self.bus.publish([notice])


async def test_device_updated_sends_the_row_now_and_after_each_committed_change(
    url, db_engine, bus
):
    row = device_row("acme", "SN-1")
    await insert(db_engine, devices, [row])
    projector = Projector(db_engine, bus)
    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("d", DEVICE, {"id": str(row["id"])})
        now = (await client.data("d"))["deviceUpdated"]
        assert (now["status"], now["version"]) == ("ONLINE", 2)

        await projector.change(devices, row, status="offline")
        changed = (await client.data("d"))["deviceUpdated"]
        assert (changed["status"], changed["version"]) == ("OFFLINE", 3)
        assert changed["position"] == projector.position

        await projector.notify(devices, row)  # a notice that changed nothing: no message
        await projector.change(devices, row, anomaly_count=1)
        assert (await client.data("d"))["deviceUpdated"]["anomalyCount"] == 1


async def test_fleet_updated_carries_rollout_progress(url, db_engine, bus):
    row = fleet_row("acme", "cameras")
    await insert(db_engine, fleets, [row])
    projector = Projector(db_engine, bus)
    async with GraphQLWS.connect(url, bearer()) as client:
        await client.subscribe("f", FLEET, {"id": str(row["id"])})
        assert (await client.data("f"))["fleetUpdated"]["rollout"] is None

        await projector.change(
            fleets,
            row,
            rollout_count=1,
            rollout_status="running",
            rollout_model_version="2.0",
            rollout_phases=[5, 25, 100],
            rollout_phase=1,
            rollout_percent=5,
            rollout_failure_threshold=0.2,
            rollout_started_at=T0,
            rollout_targeted=4,
            rollout_succeeded=0,
            rollout_failed=0,
        )
        rollout = (await client.data("f"))["fleetUpdated"]["rollout"]
        assert rollout == {
            "status": "RUNNING",
            "modelVersion": "2.0",
            "phases": [5, 25, 100],
            "phase": 1,
            "percent": 5,
            "targeted": 4,
            "succeeded": 0,
            "failed": 0,
        }
        await projector.change(fleets, row, rollout_succeeded=3, rollout_failed=1)
        progress = (await client.data("f"))["fleetUpdated"]["rollout"]
        assert (progress["succeeded"], progress["failed"]) == (3, 1)


async def test_many_subscribers_to_one_device_cost_one_read_per_notice(url, db_engine, bus, hub):
    row = device_row("acme", "SN-shared")
    await insert(db_engine, devices, [row])
    projector = Projector(db_engine, bus)
    async with (
        GraphQLWS.connect(url, bearer()) as one,
        GraphQLWS.connect(url, bearer()) as two,
    ):
        clients = [one, two]
        for client in clients:
            for n in range(10):
                await client.subscribe(f"d{n}", DEVICE, {"id": str(row["id"])})
        for client in clients:
            for n in range(10):
                assert (await client.data(f"d{n}"))["deviceUpdated"]["version"] == 2
        reads = hub.snapshots.reads
        for status in ("offline", "online", "offline"):
            await projector.change(devices, row, status=status)
            for client in clients:
                for n in range(10):
                    assert (await client.data(f"d{n}"))["deviceUpdated"]["status"] == status.upper()
        assert hub.snapshots.reads - reads == 3
        assert hub.stats()["executions"] == 1


async def test_tenant_b_never_sees_tenant_a_device_updates(url, db_engine, bus):
    acme_row = device_row("acme", "SN-A")
    globex_row = device_row("globex", "SN-G")
    await insert(db_engine, devices, [acme_row, globex_row])
    projector = Projector(db_engine, bus)
    async with (
        GraphQLWS.connect(url, bearer("acme")) as acme,
        GraphQLWS.connect(url, bearer("globex")) as globex,
    ):
        await globex.subscribe("spy", DEVICE, {"id": str(acme_row["id"])})
        await globex.subscribe("own", DEVICE, {"id": str(globex_row["id"])})
        await acme.subscribe("own", DEVICE, {"id": str(acme_row["id"])})
        assert (await globex.data("own"))["deviceUpdated"]["id"] == str(globex_row["id"])
        assert (await acme.data("own"))["deviceUpdated"]["version"] == 2

        await projector.change(devices, acme_row, status="offline")
        assert (await acme.data("own"))["deviceUpdated"]["status"] == "OFFLINE"
        await projector.change(devices, globex_row, status="offline")
        assert (await globex.data("own"))["deviceUpdated"]["status"] == "OFFLINE"
        await globex.ping()
        assert globex.pending("spy") == 0, "acme's device never reached globex"


async def test_the_legacy_graphql_ws_protocol_is_refused_with_4406(url):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedError

    async with connect(url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406
