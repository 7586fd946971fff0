"""A realistic fleet's history, made through the real domain and written to a real event store.

``drive`` registers models and promotes them, creates fleets, registers
devices and assigns them, brings them online, rolls a model out to each fleet
in phases (some rollouts complete, some cross their failure threshold and roll
back, one is paused and resumed), and mixes in anomalies, outages, fleet moves
and decommissions. A seed makes the history the same on every run; times come
from a fake clock, never from ``now()``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from domain import Device, Fleet, Model
from domain.base import VigilAggregate
from infrastructure.eventstore.port import StreamRef
from infrastructure.repository import Repository

SIGNATURE = {"images": {"dtype": "float32", "shape": [None, 3, 224, 224]}}


@dataclass
class Summary:
    """What ``drive`` made, for tests to check read models against."""

    tenant: str
    models: list[UUID] = field(default_factory=list)
    fleets: list[UUID] = field(default_factory=list)
    devices: list[UUID] = field(default_factory=list)
    commits: int = 0


class Operator:
    """Runs domain methods on aggregates and saves what they decide, like a command would."""

    def __init__(self, repository: Repository, tenant: str, start: datetime | None = None) -> None:
        self.repository = repository
        self.tenant = tenant
        self.clock = start or datetime(2030, 1, 1, tzinfo=UTC)
        self.commits = 0

    def at(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    async def create(self, aggregate: VigilAggregate) -> UUID:
        loaded = await self.repository.load(StreamRef(self.tenant, aggregate.TYPE, aggregate.id))
        loaded.aggregate = aggregate
        await self.repository.save(loaded, aggregate.collect_events())
        self.commits += 1
        return aggregate.id

    async def change(
        self, kind: type[VigilAggregate], id: UUID, method: str, *args: Any, **kwargs: Any
    ) -> None:
        """Call ``method`` on the aggregate (a command's decision) and save its events."""
        loaded = await self.repository.load(StreamRef(self.tenant, kind.TYPE, id))
        getattr(loaded.aggregate, method)(*args, **kwargs)
        events = loaded.aggregate.collect_events()  # type: ignore[union-attr]
        if events:
            await self.repository.save(loaded, events)
            self.commits += 1


async def drive(
    repository: Repository,
    *,
    tenant: str = "acme",
    devices: int = 120,
    fleets: int = 4,
    seed: int = 7,
    actor: str = "ops@acme",
) -> Summary:
    """Write one fleet's history; returns what it created."""
    rng = random.Random(seed)
    op = Operator(repository, tenant)
    summary = Summary(tenant)

    for n, version in enumerate(("1.0.0", "1.1.0", "2.0.0")):
        model = Model.register(
            tenant_id=tenant,
            name="detector",
            version=version,
            sha256=hashlib.sha256(version.encode()).hexdigest(),
            size_bytes=1_000_000 + n,
            input_signature=SIGNATURE,
            output_signature={"boxes": {"dtype": "float32", "shape": [None, 4]}},
            artifact_name=f"detector-{version}.onnx",
            actor=actor,
            at=op.at(),
        )
        summary.models.append(await op.create(model))
    for model_id in summary.models[:2]:
        await op.change(Model, model_id, "promote", "staging", actor=actor, at=op.at())
    await op.change(Model, summary.models[1], "promote", "production", actor=actor, at=op.at())
    await op.change(Model, summary.models[0], "deprecate", "superseded", actor=actor, at=op.at())

    for n in range(fleets):
        fleet = Fleet.create(tenant_id=tenant, name=f"fleet-{n}", actor=actor, at=op.at())
        summary.fleets.append(await op.create(fleet))

    members: dict[UUID, list[UUID]] = {fleet_id: [] for fleet_id in summary.fleets}
    for n in range(devices):
        device = Device.register(
            tenant_id=tenant,
            serial_number=f"SN-{seed}-{n:05d}",
            hardware_profile=rng.choice(["orin-nx", "orin-nano", "rpi5-hailo"]),
            firmware_version=rng.choice([None, "4.2.0", "4.3.1"]),
            actor="provisioning",
            at=op.at(),
        )
        device_id = await op.create(device)
        summary.devices.append(device_id)
        if n % 10 != 9:  # a few stay out of every fleet
            fleet_id = summary.fleets[n % fleets]
            members[fleet_id].append(device_id)
            await op.change(
                Device,
                device_id,
                "assign_to_fleet",
                fleet_id,
                actor=actor,
                at=op.at(),
            )
        await op.change(Device, device_id, "come_online", actor=device_id.hex, at=op.at())

    target = summary.models[1]
    for index, fleet_id in enumerate(summary.fleets):
        failing = index % 2 == 1  # every other fleet crosses its threshold and rolls back
        await _roll_out(
            op, rng, fleet_id, members[fleet_id], target, failing=failing, pause=index == 0
        )

    await _daily_life(op, rng, summary, members)
    summary.commits = op.commits
    return summary


async def _roll_out(
    op: Operator,
    rng: random.Random,
    fleet_id: UUID,
    members: list[UUID],
    model_id: UUID,
    *,
    failing: bool,
    pause: bool,
) -> None:
    actor = "rollout-bot"
    await op.change(
        Fleet,
        fleet_id,
        "start_rollout",
        model_id,
        "1.1.0",
        [10, 50, 100],
        0.3,
        actor=actor,
        at=op.at(),
    )
    if pause:
        await op.change(Fleet, fleet_id, "pause_rollout", actor=actor, at=op.at())
        await op.change(Fleet, fleet_id, "resume_rollout", actor=actor, at=op.at())
    done = 0
    for percent in (10, 50, 100):
        upto = max(done + 1, len(members) * percent // 100)
        phase = members[done:upto]
        done = upto
        if not phase:
            break
        await op.change(Fleet, fleet_id, "advance_rollout", phase, actor=actor, at=op.at())
        for device_id in phase:
            ok = not failing or rng.random() < 0.4
            if not await _install(op, fleet_id, device_id, model_id, ok, actor):
                return  # the threshold halted the rollout and rolled it back


async def _install(
    op: Operator, fleet_id: UUID, device_id: UUID, model_id: UUID, ok: bool, actor: str
) -> bool:
    """One device of a phase installs the model; False once the rollout has ended."""
    await op.change(
        Device, device_id, "set_desired_model", model_id, "1.1.0", actor=actor, at=op.at()
    )
    if ok:
        await op.change(
            Device,
            device_id,
            "report_install_succeeded",
            model_id,
            "1.1.0",
            actor="device",
            at=op.at(),
        )
    else:
        await op.change(
            Device,
            device_id,
            "report_install_failed",
            model_id,
            "1.1.0",
            "checksum mismatch",
            actor="device",
            at=op.at(),
        )
    await op.change(
        Fleet, fleet_id, "record_install_result", device_id, ok, actor=actor, at=op.at()
    )
    fleet = (await op.repository.load(StreamRef(op.tenant, Fleet.TYPE, fleet_id))).aggregate
    return fleet.rollout is not None  # type: ignore[union-attr]


async def _daily_life(
    op: Operator, rng: random.Random, summary: Summary, members: dict[UUID, list[UUID]]
) -> None:
    severities = ["info", "warning", "critical"]
    for device_id in summary.devices:
        for _ in range(rng.randrange(0, 4)):
            severity = rng.choice(severities)
            await op.change(
                Device,
                device_id,
                "raise_anomaly",
                "thermal",
                severity,
                "npu at 91C",
                actor="device",
                at=op.at(),
            )
        if rng.random() < 0.3:
            await op.change(Device, device_id, "go_offline", actor="liveness", at=op.at())
            if rng.random() < 0.5:
                await op.change(Device, device_id, "come_online", actor="device", at=op.at())
    moved = [d for fleet in summary.fleets[:1] for d in members[fleet][:3]]
    for device_id in moved:
        await op.change(Device, device_id, "remove_from_fleet", actor="ops", at=op.at())
        await op.change(
            Device,
            device_id,
            "assign_to_fleet",
            summary.fleets[-1],
            actor="ops",
            at=op.at(),
        )
    for device_id in summary.devices[-3:]:
        await op.change(Device, device_id, "decommission", "end of life", actor="ops", at=op.at())
