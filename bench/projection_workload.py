"""The events the projection benchmark catches up on: a fleet's life, made by the real domain.

``commits`` walks a seeded random fleet through registration, fleet
membership, phased rollouts (with install results that complete some and roll
back others), anomalies and outages, calling the real aggregates' methods and
mapping their events with the store's ``Mapper``. ``append_all`` writes them
with the real ``JetStreamEventStore``, many aggregates in flight at once, each
aggregate's commits in order.

Device events dominate, as in a real fleet: for N devices the projector
upserts close to one device row per event, which is the expensive case.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper

from domain import Device, Fleet, Model
from domain.base import VigilAggregate
from infrastructure.eventstore.port import EventStore, NewCommit, StreamRef

TENANT = "bench"
_SIGNATURE = {"images": {"dtype": "float32", "shape": [None, 3, 224, 224]}}


class _Fleet:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.members: list[Device] = []
        self.pending: list[Device] = []  # targeted by the running phase, no result yet
        self.target = 0


class Workload:
    """A deterministic stream of commits, ``events`` events long (give or take one commit)."""

    def __init__(self, mapper: Mapper[UUID], *, events: int, devices: int, seed: int = 1) -> None:
        self.mapper = mapper
        self.events = events
        self.devices_wanted = devices
        self.rng = random.Random(seed)
        self.clock = datetime(2030, 1, 1, tzinfo=UTC)
        self.count = 0
        self.models: list[Model] = []
        self.fleets: list[_Fleet] = []
        self.devices: list[Device] = []

    def at(self) -> datetime:
        self.clock += timedelta(milliseconds=10)
        return self.clock

    def commits(self) -> Iterator[NewCommit]:
        yield from self._setup()
        while self.count < self.events:
            yield from self._tick()

    def _commit(self, aggregate: VigilAggregate) -> Iterator[NewCommit]:
        events = aggregate.collect_events()
        if not events:
            return
        stored = [self.mapper.to_stored_event(event) for event in events]
        self.count += len(stored)
        yield NewCommit(
            ref=StreamRef(TENANT, aggregate.TYPE, aggregate.id),
            expected_version=aggregate.version - len(stored),
            events=stored,
        )

    def _setup(self) -> Iterator[NewCommit]:
        for n in range(10):
            version = f"{n // 3 + 1}.{n % 3}.0"
            model = Model.register(
                tenant_id=TENANT,
                name="detector",
                version=version,
                sha256=hashlib.sha256(version.encode()).hexdigest(),
                size_bytes=10_000_000 + n,
                input_signature=_SIGNATURE,
                output_signature={"boxes": {"dtype": "float32", "shape": [None, 4]}},
                artifact_name=f"detector-{version}.onnx",
                actor="bench",
                at=self.at(),
            )
            model.promote("staging", actor="bench", at=self.at())
            model.promote("production", actor="bench", at=self.at())
            self.models.append(model)
            yield from self._commit(model)
        for n in range(max(1, self.devices_wanted // 200)):
            fleet = Fleet.create(tenant_id=TENANT, name=f"fleet-{n}", actor="bench", at=self.at())
            self.fleets.append(_Fleet(fleet))
            yield from self._commit(fleet)
        for n in range(self.devices_wanted):
            device = Device.register(
                tenant_id=TENANT,
                serial_number=f"BENCH-{n:07d}",
                hardware_profile="orin-nx",
                firmware_version="4.3.1",
                actor="provisioning",
                at=self.at(),
            )
            group = self.fleets[n % len(self.fleets)]
            device.assign_to_fleet(group.fleet.id, actor="bench", at=self.at())
            device.come_online(actor="device", at=self.at())
            group.members.append(device)
            self.devices.append(device)
            yield from self._commit(device)

    def _tick(self) -> Iterator[NewCommit]:
        roll = self.rng.random()
        if roll < 0.10:
            yield from self._rollout_step(self.rng.choice(self.fleets))
            return
        device = self.rng.choice(self.devices)
        at = self.at()
        if roll < 0.70:
            severity = self.rng.choice(("info", "info", "warning", "critical"))
            device.raise_anomaly("thermal", severity, "npu at 91C", actor="device", at=at)
        elif roll < 0.90:
            if device.status == "online":
                device.go_offline(actor="liveness", at=at)
            else:
                device.come_online(actor="device", at=at)
        else:
            model = self.rng.choice(self.models)
            if device.desired_model_id != model.id:
                device.set_desired_model(model.id, model.model_version, actor="bench", at=at)
            device.report_install_succeeded(model.id, model.model_version, actor="device", at=at)
        yield from self._commit(device)

    def _rollout_step(self, group: _Fleet) -> Iterator[NewCommit]:
        fleet = group.fleet
        if fleet.rollout is None:
            group.pending = []  # whatever the last rollout left undone ended with it
            group.target = (group.target + 1) % len(self.models)
            model = self.models[group.target]
            if (fleet.current_model_id, fleet.current_model_version) == (
                model.id,
                model.model_version,
            ):
                return
            fleet.start_rollout(
                model.id, model.model_version, [10, 50, 100], 0.2, actor="bench", at=self.at()
            )
            yield from self._commit(fleet)
            return
        rollout = fleet.rollout
        if group.pending:
            device = group.pending.pop()
            ok = self.rng.random() < 0.97
            yield from self._install(device, rollout, ok)
            fleet.record_install_result(device.id, ok, actor="bench", at=self.at())
            yield from self._commit(fleet)
            return
        if rollout["phases_started"] < len(rollout["phases"]):
            percent = rollout["phases"][rollout["phases_started"]]
            upto = max(len(rollout["targeted"]) + 1, len(group.members) * percent // 100)
            chosen = group.members[len(rollout["targeted"]) : upto]
            if not chosen:
                return
            fleet.advance_rollout([d.id for d in chosen], actor="bench", at=self.at())
            group.pending = list(chosen)
            yield from self._commit(fleet)

    def _install(self, device: Device, rollout: Any, ok: bool) -> Iterator[NewCommit]:
        model_id, version = rollout["model_id"], rollout["model_version"]
        at = self.at()
        if device.desired_model_id != model_id or device.desired_model_version != version:
            device.set_desired_model(model_id, version, actor="rollout", at=at)
        if ok:
            device.report_install_succeeded(model_id, version, actor="device", at=at)
        else:
            device.report_install_failed(
                model_id, version, "checksum mismatch", actor="device", at=at
            )
        yield from self._commit(device)


async def append_all(
    store: EventStore, commits: Iterator[NewCommit], *, concurrency: int = 64
) -> int:
    """Append every commit, ``concurrency`` at a time, each aggregate's in order."""
    queues: list[asyncio.Queue[NewCommit | None]] = [
        asyncio.Queue(maxsize=256) for _ in range(concurrency)
    ]
    appended = 0

    async def worker(queue: asyncio.Queue[NewCommit | None]) -> None:
        nonlocal appended
        while (commit := await queue.get()) is not None:
            await store.append(commit)
            appended += len(commit.events)

    workers = [asyncio.create_task(worker(queue)) for queue in queues]
    try:
        for commit in commits:
            await queues[commit.ref.id.int % concurrency].put(commit)
        for queue in queues:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return appended
