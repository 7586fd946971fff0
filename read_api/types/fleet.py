"""Fleet: a named group of devices, its active rollout and how its devices stand."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from read_api.context import ReadContext
from read_api.pagination import PageRequest
from read_api.readers.fleets import FleetFilter, count_fleets, page_fleets
from read_api.types.common import Connection, Long, Source, connection
from read_api.types.device import Device, DeviceFilterInput, devices_page
from read_api.types.timeline import TimelineEvent, history_of

if TYPE_CHECKING:
    from domain.fleet import Fleet as FleetAggregate
    from read_api.types.model import Model

PROJECTION = "fleets"


@strawberry.enum
class RolloutStatus(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"


@strawberry.input(description="Fleets match when they satisfy every field given.")
class FleetFilterInput:
    search: str | None = strawberry.field(
        default=None, description="Names containing this, ignoring case."
    )
    rollout_active: bool | None = None

    def to_filter(self) -> FleetFilter:
        return FleetFilter(name_contains=self.search, rollout_active=self.rollout_active)


@strawberry.type(description="The fleet's active rollout.")
class Rollout:
    status: RolloutStatus
    model_id: UUID | None
    model_version: str
    previous_model_version: str | None
    phases: list[int] = strawberry.field(description="Cumulative percentages, e.g. [5, 25, 100].")
    phase: int = strawberry.field(description="Phases started so far (0: none yet).")
    percent: int | None = strawberry.field(description="Percentage of the latest phase started.")
    failure_threshold: float
    started_at: datetime
    targeted: int
    succeeded: int
    failed: int


@strawberry.type(description="How the fleet's latest finished rollout ended.")
class RolloutOutcome:
    outcome: str = strawberry.field(description="completed, halted or rolled_back.")
    model_version: str | None
    reason: str | None
    ended_at: datetime | None


@strawberry.type
class StatusCount:
    status: str
    count: int


@strawberry.type
class ModelCount:
    model_version: str | None = strawberry.field(description="Null: no model reported yet.")
    count: int


@strawberry.type(description="How many of the fleet's devices are in each state, as of now.")
class DeviceCounts:
    total: int
    by_status: list[StatusCount]
    by_model: list[ModelCount]


@strawberry.type(description="A named group of devices within the caller's tenant.")
class Fleet:
    id: UUID
    name: str
    current_model_id: UUID | None
    current_model_version: str | None
    rollout_count: int
    rollout: Rollout | None
    last_rollout: RolloutOutcome | None = strawberry.field(
        description="Kept by the fleets projection; null when rebuilt by time travel."
    )
    created_at: datetime
    updated_at: datetime
    version: int
    position: Long | None = strawberry.field(description="Null when rebuilt by time travel.")
    source: Source

    @strawberry.field(description="The model the fleet runs outside a rollout.")
    async def current_model(
        self, info: strawberry.Info[ReadContext, None]
    ) -> Annotated[Model, strawberry.lazy("read_api.types.model")] | None:
        if self.current_model_id is None:
            return None
        return await info.context.loaders.models.load(self.current_model_id)

    @strawberry.field(description="Device counts by status and reported model (current).")
    async def device_counts(self, info: strawberry.Info[ReadContext, None]) -> DeviceCounts:
        counts = await info.context.loaders.device_counts.load(self.id)
        return DeviceCounts(
            total=counts.total,
            by_status=[StatusCount(status=k, count=v) for k, v in sorted(counts.by_status.items())],
            by_model=[
                ModelCount(model_version=k or None, count=v)
                for k, v in sorted(counts.by_model.items())
            ],
        )

    @strawberry.field(description="The fleet's devices (current), ordered by serial number.")
    async def devices(
        self,
        info: strawberry.Info[ReadContext, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: DeviceFilterInput | None = None,
    ) -> Connection[Device]:
        request = PageRequest(first=first, after=after, last=last, before=before)
        return await devices_page(info.context, filter, request, fleet_id=self.id)

    @strawberry.field(description="The fleet's events, oldest first.")
    async def history(
        self,
        info: strawberry.Info[ReadContext, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[TimelineEvent]:
        up_to = self.version if self.source is Source.EVENT_LOG else None
        request = PageRequest(first=first, after=after, last=last, before=before)
        return await history_of(info.context, self.id, request, up_to_version=up_to)

    @classmethod
    def from_row(cls, row: Any) -> Fleet:
        rollout = None
        if row.rollout_status is not None:
            rollout = Rollout(
                status=RolloutStatus(row.rollout_status),
                model_id=row.rollout_model_id,
                model_version=row.rollout_model_version,
                previous_model_version=row.rollout_previous_model_version,
                phases=list(row.rollout_phases or []),
                phase=row.rollout_phase or 0,
                percent=row.rollout_percent,
                failure_threshold=row.rollout_failure_threshold,
                started_at=row.rollout_started_at,
                targeted=row.rollout_targeted or 0,
                succeeded=row.rollout_succeeded or 0,
                failed=row.rollout_failed or 0,
            )
        outcome = None
        if row.last_rollout_outcome is not None:
            outcome = RolloutOutcome(
                outcome=row.last_rollout_outcome,
                model_version=row.last_rollout_model_version,
                reason=row.last_rollout_reason,
                ended_at=row.last_rollout_ended_at,
            )
        return cls(
            id=row.id,
            name=row.name,
            current_model_id=row.current_model_id,
            current_model_version=row.current_model_version,
            rollout_count=row.rollout_count,
            rollout=rollout,
            last_rollout=outcome,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            position=row.position,
            source=Source.READ_MODEL,
        )

    @classmethod
    def from_aggregate(cls, fleet: FleetAggregate) -> Fleet:
        rollout = None
        state = fleet.rollout
        if state is not None:
            started = state["phases_started"]
            rollout = Rollout(
                status=RolloutStatus.PAUSED if state["paused"] else RolloutStatus.RUNNING,
                model_id=state["model_id"],
                model_version=state["model_version"],
                previous_model_version=state["previous_model_version"],
                phases=list(state["phases"]),
                phase=started,
                percent=state["phases"][started - 1] if started else None,
                failure_threshold=state["failure_threshold"],
                started_at=state["started_at"],
                targeted=len(state["targeted"]),
                succeeded=len(state["succeeded"]),
                failed=len(state["failed"]),
            )
        return cls(
            id=fleet.id,
            name=fleet.name,
            current_model_id=fleet.current_model_id,
            current_model_version=fleet.current_model_version,
            rollout_count=fleet.rollout_count,
            rollout=rollout,
            last_rollout=None,
            created_at=fleet.created_on,
            updated_at=fleet.modified_on,
            version=fleet.version,
            position=None,
            source=Source.EVENT_LOG,
        )


async def fleets_page(
    context: ReadContext, where: FleetFilterInput | None, request: PageRequest
) -> Connection[Fleet]:
    """A page of the caller's fleets, ordered by name."""
    await context.reach(PROJECTION)
    tenant = context.tenant
    criteria = (where or FleetFilterInput()).to_filter()
    max_page_size = context.services.limits.max_page_size
    async with context.connect() as conn:
        page = await page_fleets(conn, tenant, criteria, request, max_page_size=max_page_size)

    async def count() -> int:
        async with context.connect() as conn:
            return await count_fleets(conn, tenant, criteria)

    return connection(page, Fleet.from_row, count)
