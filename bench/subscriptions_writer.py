"""The benchmark's own side of the system for ``bench.subscriptions``: projector and writer.

It owns a device, its read-model row and its event stream, and changes them
the way the real system would: a projected row change committed to the read
model then announced on Redis, or a command committed to JetStream.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

REDIS_URL = "redis://127.0.0.1:6379/0"
TENANT = "bench"


class Writer:
    """The benchmark's side of the system: a device, its read-model row, its events."""

    def __init__(self, db_url: str, nats_url: str, config: Any) -> None:
        self.db_url, self.nats_url, self.config = db_url, nats_url, config

    async def open(self) -> None:
        import nats

        import migrations
        from infrastructure.database import create_engine
        from infrastructure.eventstore.jetstream import JetStreamEventStore
        from infrastructure.eventstore.setup import ensure_jetstream
        from read_api.subscriptions.redis_bus import RedisChangeBus
        from vigil.bootstrap import build_services

        self.engine = create_engine(self.db_url)
        await migrations.upgrade_async(self.engine)
        self.nc = await nats.connect(self.nats_url)
        await ensure_jetstream(self.nc.jetstream(), self.config)
        self.store = JetStreamEventStore(self.nc, self.config)
        self.service = build_services(self.store, jwt_secret="x" * 32).service
        self.channel = f"vigil-bench:{secrets.token_hex(6)}"
        self.bus = RedisChangeBus.from_url(REDIS_URL, channel=self.channel)
        self.device = await self._register()

    async def close(self) -> None:
        await self.bus.close()
        await self.store.close()
        await self.nc.close()
        await self.engine.dispose()

    async def _register(self) -> Any:
        from commands.catalog import COMMANDS
        from commands.catalog.devices import RegisterDevice
        from projections.tables import devices
        from tests.support.graphql import device_row

        body = RegisterDevice(serial_number="SN-BENCH-0001", hardware_profile="orin-nx")
        result = (await self.service.execute(COMMANDS["RegisterDevice"], body, self._ctx())).result
        self.row = device_row(TENANT, "SN-BENCH-0001", id=result.ref.id, version=1)
        async with self.engine.begin() as conn:
            await conn.execute(devices.insert(), [self.row])
        return result.ref.id

    def _ctx(self) -> Any:
        from commands.spec import Context

        return Context(TENANT, "bench", datetime.now(UTC))

    async def project_change(self) -> float:
        """Commit the row's next version, then publish its notice; returns the commit time."""
        from infrastructure.changes import ChangeNotice
        from projections.tables import devices

        row = self.row
        row["version"] += 1
        row["anomaly_count"] += 1
        row["position"] += 1
        async with self.engine.begin() as conn:
            await conn.execute(
                devices.update()
                .where(devices.c.tenant_id == TENANT, devices.c.id == self.device)
                .values(
                    version=row["version"],
                    anomaly_count=row["anomaly_count"],
                    position=row["position"],
                )
            )
        committed = time.monotonic()
        await self.bus.publish(
            [
                ChangeNotice(
                    "devices", TENANT, "device", self.device, row["version"], row["position"]
                )
            ]
        )
        return committed

    async def append_event(self) -> float:
        """Commit one event to JetStream; returns the time the append started.

        The API's live feed can deliver the commit before this process resumes
        after the acknowledgement, so the clock starts before the append: the
        figure includes the commit round trip and is never negative.
        """
        from commands.catalog import COMMANDS
        from commands.catalog.devices import RaiseAnomaly

        body = RaiseAnomaly(device_id=self.device, kind="bench", severity="info")
        started = time.monotonic()
        await self.service.execute(COMMANDS["RaiseAnomaly"], body, self._ctx())
        return started
