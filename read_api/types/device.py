"""Device: an edge box as the devices read model (or, by time travel, its events) has it."""

from __future__ import annotations

import enum
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from projections.tables import devices
from read_api.context import ReadContext
from read_api.errors import BadInput
from read_api.pagination import PageRequest
from read_api.readers.devices import PAGE_KEY, DeviceFilter, count_devices, page_devices
from read_api.rowpages import RowSource
from read_api.types.common import Connection, Long, Source, connection
from read_api.types.timeline import TimelineEvent, history_of

if TYPE_CHECKING:
    from domain.device import Device as DeviceAggregate

PROJECTION = "devices"


@strawberry.enum
class DeviceStatus(enum.Enum):
    REGISTERED = "registered"
    ONLINE = "online"
    OFFLINE = "offline"
    DECOMMISSIONED = "decommissioned"


@strawberry.enum
class DeviceHealth(enum.Enum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


# The columns from_rows copies as they are (status and health are looked up).
_ROW_COLUMNS = (
    "id",
    "serial_number",
    "hardware_profile",
    "firmware_version",
    "status",
    "health",
    "fleet_id",
    "desired_model_id",
    "desired_model_version",
    "reported_model_id",
    "reported_model_version",
    "last_install_error",
    "last_seen_at",
    "anomaly_count",
    "created_at",
    "updated_at",
    "version",
    "position",
)
_STATUSES = {member.value: member for member in DeviceStatus}
_HEALTHS = {member.value: member for member in DeviceHealth}

# Pages that select only these fields render from the rows (read_api.rowpages).
DEVICE_ROWS = RowSource(
    projection=PROJECTION,
    table=devices,
    key=PAGE_KEY,
    fields={
        **{name: (name, None) for name in _ROW_COLUMNS},
        "status": ("status", _STATUSES),
        "health": ("health", _HEALTHS),
    },
)


@strawberry.input(description="Devices match when they satisfy every field given.")
class DeviceFilterInput:
    fleet_id: UUID | None = None
    status: DeviceStatus | None = None
    health: DeviceHealth | None = None
    model_version: str | None = strawberry.field(
        default=None, description="The model version the device reports it runs."
    )
    desired_model_version: str | None = None
    serial_prefix: str | None = strawberry.field(
        default=None, description="Serial numbers starting with this (case-sensitive, indexed)."
    )
    search: str | None = strawberry.field(
        default=None, description="Serial numbers containing this, ignoring case."
    )

    def to_filter(self, fleet_id: UUID | None = None) -> DeviceFilter:
        return DeviceFilter(
            fleet_id=fleet_id or self.fleet_id,
            status=self.status.value if self.status else None,
            health=self.health.value if self.health else None,
            model_version=self.model_version,
            desired_model_version=self.desired_model_version,
            serial_prefix=self.serial_prefix,
            serial_contains=self.search,
        )


@strawberry.type(description="The latest anomaly a device raised.")
class Anomaly:
    kind: str
    severity: str
    at: datetime


@strawberry.type(description="An edge device, registered under the caller's tenant.")
class Device:
    id: UUID
    serial_number: str
    hardware_profile: str
    firmware_version: str | None
    status: DeviceStatus
    health: DeviceHealth | None = strawberry.field(
        description="Derived by the devices projection; null when rebuilt by time travel."
    )
    fleet_id: UUID | None
    desired_model_id: UUID | None
    desired_model_version: str | None
    reported_model_id: UUID | None
    reported_model_version: str | None
    last_install_error: str | None
    last_seen_at: datetime | None
    anomaly_count: int
    last_anomaly: Anomaly | None = strawberry.field(
        description="Kept by the devices projection; null when rebuilt by time travel."
    )
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="How many events the device has had.")
    position: Long | None = strawberry.field(
        description="Stream position of the last commit reflected; null from time travel."
    )
    source: Source

    @strawberry.field(description="The fleet the device belongs to, if any.")
    async def fleet(
        self, info: strawberry.Info[ReadContext, None]
    ) -> Annotated[Fleet, strawberry.lazy("read_api.types.fleet")] | None:
        if self.fleet_id is None:
            return None
        return await info.context.loaders.fleets.load(self.fleet_id)

    @strawberry.field(description="The model the cloud wants this device to run.")
    async def desired_model(
        self, info: strawberry.Info[ReadContext, None]
    ) -> Annotated[Model, strawberry.lazy("read_api.types.model")] | None:
        if self.desired_model_id is None:
            return None
        return await info.context.loaders.models.load(self.desired_model_id)

    @strawberry.field(description="The model the device reports it runs.")
    async def reported_model(
        self, info: strawberry.Info[ReadContext, None]
    ) -> Annotated[Model, strawberry.lazy("read_api.types.model")] | None:
        if self.reported_model_id is None:
            return None
        return await info.context.loaders.models.load(self.reported_model_id)

    @strawberry.field(description="The device's events, oldest first.")
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
    def from_row(cls, row: Any) -> Device:
        # Pages build a hundred of these per request: fill the instance's
        # attributes in one go (exactly what the dataclass __init__ would
        # set) and look the enums up in dicts instead of calling them.
        anomaly = None
        if row.last_anomaly_at is not None:
            anomaly = Anomaly(
                kind=row.last_anomaly_kind,
                severity=row.last_anomaly_severity,
                at=row.last_anomaly_at,
            )
        status = _STATUSES.get(row.status)
        if status is None:
            status = DeviceStatus(row.status)  # raises as before on unknown values
        health = _HEALTHS.get(row.health)
        if health is None:
            health = DeviceHealth(row.health)
        device = cls.__new__(cls)
        device.__dict__.update(
            id=row.id,
            serial_number=row.serial_number,
            hardware_profile=row.hardware_profile,
            firmware_version=row.firmware_version,
            status=status,
            health=health,
            fleet_id=row.fleet_id,
            desired_model_id=row.desired_model_id,
            desired_model_version=row.desired_model_version,
            reported_model_id=row.reported_model_id,
            reported_model_version=row.reported_model_version,
            last_install_error=row.last_install_error,
            last_seen_at=row.last_seen_at,
            anomaly_count=row.anomaly_count,
            last_anomaly=anomaly,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            position=row.position,
            source=Source.READ_MODEL,
        )
        return device

    @classmethod
    def from_rows(cls, rows: list[Any]) -> list[Device]:
        """``[from_row(row) for row in rows]``, reading the rows' layout once.

        Rows of one result share their columns, so the plain attributes are
        taken with one ``itemgetter`` per row; rows with an anomaly, or
        whose enums need converting the slow way, go through ``from_row``.
        """
        if not rows:
            return []
        fields = rows[0]._fields
        if any(name not in fields for name in _ROW_COLUMNS):
            return [cls.from_row(row) for row in rows]
        take = itemgetter(*(fields.index(name) for name in _ROW_COLUMNS))
        anomaly_at = fields.index("last_anomaly_at")
        statuses, healths, source = _STATUSES, _HEALTHS, Source.READ_MODEL
        new = cls.__new__
        out: list[Device] = []
        for row in rows:
            values = dict(zip(_ROW_COLUMNS, take(row), strict=True))
            status = statuses.get(values["status"])
            health = healths.get(values["health"])
            if row[anomaly_at] is not None or status is None or health is None:
                out.append(cls.from_row(row))
                continue
            values["status"] = status
            values["health"] = health
            values["last_anomaly"] = None
            values["source"] = source
            device = new(cls)
            device.__dict__.update(values)
            out.append(device)
        return out

    @classmethod
    def from_aggregate(cls, device: DeviceAggregate) -> Device:
        return cls(
            id=device.id,
            serial_number=device.serial_number,
            hardware_profile=device.hardware_profile,
            firmware_version=device.firmware_version,
            status=DeviceStatus(device.status),
            health=None,
            fleet_id=device.fleet_id,
            desired_model_id=device.desired_model_id,
            desired_model_version=device.desired_model_version,
            reported_model_id=device.reported_model_id,
            reported_model_version=device.reported_model_version,
            last_install_error=device.last_install_error,
            last_seen_at=device.last_seen_at,
            anomaly_count=device.anomaly_count,
            last_anomaly=None,
            created_at=device.created_on,
            updated_at=device.modified_on,
            version=device.version,
            position=None,
            source=Source.EVENT_LOG,
        )


async def devices_page(
    context: ReadContext,
    where: DeviceFilterInput | None,
    request: PageRequest,
    *,
    fleet_id: UUID | None = None,
) -> Connection[Device]:
    """A page of the caller's devices; ``fleet_id`` narrows it to one fleet."""
    await context.reach(PROJECTION)
    tenant = context.tenant
    if fleet_id is not None and where is not None and where.fleet_id not in (None, fleet_id):
        raise BadInput("filter.fleetId names another fleet than the one being read")
    criteria = (where or DeviceFilterInput()).to_filter(fleet_id)
    max_page_size = context.services.limits.max_page_size
    async with context.connect() as conn:
        page = await page_devices(conn, tenant, criteria, request, max_page_size=max_page_size)

    async def count() -> int:
        async with context.connect() as conn:
            return await count_devices(conn, tenant, criteria)

    return connection(page, Device.from_row, count, to_nodes=Device.from_rows)


if TYPE_CHECKING:
    from read_api.types.fleet import Fleet
    from read_api.types.model import Model
