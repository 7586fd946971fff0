"""What deviceUpdated and fleetUpdated deliver: read-model rows as GraphQL types."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry


@strawberry.type(description="A device as the devices read model has it after a change.")
class DeviceSnapshot:
    id: UUID
    serial_number: str
    hardware_profile: str
    firmware_version: str | None
    status: str
    health: str
    fleet_id: UUID | None
    desired_model_id: UUID | None
    desired_model_version: str | None
    reported_model_id: UUID | None
    reported_model_version: str | None
    last_install_error: str | None
    last_seen_at: datetime | None
    anomaly_count: int
    last_anomaly_at: datetime | None
    last_anomaly_kind: str | None
    last_anomaly_severity: str | None
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="The aggregate version the row reflects.")
    position: int = strawberry.field(description="The last commit position applied to the row.")

    @classmethod
    def from_row(cls, row: Any) -> DeviceSnapshot:
        return cls(**{name: getattr(row, name) for name in _DEVICE_FIELDS})


@strawberry.type(description="Progress of a fleet's active rollout.")
class RolloutSnapshot:
    status: str = strawberry.field(description="running or paused.")
    model_id: UUID | None
    model_version: str | None
    previous_model_version: str | None
    phases: list[int] = strawberry.field(description="Cumulative percentages, e.g. [5, 25, 100].")
    phase: int = strawberry.field(description="Phases started so far.")
    percent: int = strawberry.field(description="Percentage of the latest phase started.")
    failure_threshold: float | None
    started_at: datetime | None
    targeted: int
    succeeded: int
    failed: int
    pending: int = strawberry.field(description="Targeted devices with no result yet.")


@strawberry.type(description="A fleet as the fleets read model has it after a change.")
class FleetSnapshot:
    id: UUID
    name: str
    current_model_id: UUID | None
    current_model_version: str | None
    rollout_count: int
    rollout: RolloutSnapshot | None = strawberry.field(description="None when none is active.")
    last_rollout_outcome: str | None = strawberry.field(
        description="How the latest finished rollout ended: completed, halted or rolled_back."
    )
    last_rollout_model_version: str | None
    last_rollout_reason: str | None
    last_rollout_ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    position: int

    @classmethod
    def from_row(cls, row: Any) -> FleetSnapshot:
        rollout = None
        if row.rollout_status is not None:
            targeted = row.rollout_targeted or 0
            succeeded = row.rollout_succeeded or 0
            failed = row.rollout_failed or 0
            rollout = RolloutSnapshot(
                status=row.rollout_status,
                model_id=row.rollout_model_id,
                model_version=row.rollout_model_version,
                previous_model_version=row.rollout_previous_model_version,
                phases=list(row.rollout_phases or []),
                phase=row.rollout_phase or 0,
                percent=row.rollout_percent or 0,
                failure_threshold=row.rollout_failure_threshold,
                started_at=row.rollout_started_at,
                targeted=targeted,
                succeeded=succeeded,
                failed=failed,
                pending=max(targeted - succeeded - failed, 0),
            )
        fields = {name: getattr(row, name) for name in _FLEET_FIELDS}
        return cls(rollout=rollout, **fields)


_DEVICE_FIELDS = tuple(name for name in DeviceSnapshot.__annotations__ if not name.startswith("_"))
_FLEET_FIELDS = tuple(name for name in FleetSnapshot.__annotations__ if name != "rollout")
