"""Device: one edge box, its fleet, the model it should run and the one it runs.

Authority is split by field: the cloud owns *desired* state (fleet membership,
desired model, decommissioning); the device owns *reported* state (installs,
liveness, anomalies). A decommissioned device keeps its history and accepts
nothing more.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import errors, identity
from domain.base import VigilAggregate, ensure_text
from domain.model import ensure_model_version

_SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_PROFILE_LENGTH = 64
_MAX_KIND_LENGTH = 64
_MAX_DETAIL_LENGTH = 2000
_MAX_REASON_LENGTH = 500

REGISTERED = "registered"
ONLINE = "online"
OFFLINE = "offline"
DECOMMISSIONED = "decommissioned"

SEVERITIES = ("info", "warning", "critical")


class Device(VigilAggregate):
    """An edge device, registered under a tenant by its serial number."""

    TYPE = "device"
    # v2: devices record the firmware they were registered with. Snapshots taken
    # at v1 lack the attribute; upcast_v1_v2 fills it in on load.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["firmware_version"] = None

    class Registered(VigilAggregate.Created):
        # v2 added firmware_version; events stored at v1 are upcast on read.
        class_version = 2

        serial_number: str
        hardware_profile: str
        firmware_version: str | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["firmware_version"] = None

        def apply(self, device: Device) -> None:
            device.serial_number = self.serial_number
            device.hardware_profile = self.hardware_profile
            device.firmware_version = self.firmware_version

    class AssignedToFleet(VigilAggregate.Event):
        fleet_id: UUID

        def apply(self, device: Device) -> None:
            device.fleet_id = self.fleet_id

    class RemovedFromFleet(VigilAggregate.Event):
        fleet_id: UUID

        def apply(self, device: Device) -> None:
            device.fleet_id = None

    class DesiredModelSet(VigilAggregate.Event):
        model_id: UUID
        model_version: str

        def apply(self, device: Device) -> None:
            device.desired_model_id = self.model_id
            device.desired_model_version = self.model_version

    class ModelInstallSucceeded(VigilAggregate.Event):
        model_id: UUID
        model_version: str

        def apply(self, device: Device) -> None:
            device.reported_model_id = self.model_id
            device.reported_model_version = self.model_version
            device.last_install_error = None

    class ModelInstallFailed(VigilAggregate.Event):
        model_id: UUID
        model_version: str
        reason: str

        def apply(self, device: Device) -> None:
            device.last_install_error = self.reason

    class WentOffline(VigilAggregate.Event):
        last_seen_at: datetime | None  # the last time the device was seen, not when it was missed

        def apply(self, device: Device) -> None:
            device.status = OFFLINE
            device.last_seen_at = self.last_seen_at

    class CameOnline(VigilAggregate.Event):
        def apply(self, device: Device) -> None:
            device.status = ONLINE
            device.last_seen_at = self.timestamp

    class AnomalyRaised(VigilAggregate.Event):
        kind: str
        severity: str
        detail: str

        def apply(self, device: Device) -> None:
            device.anomaly_count += 1

    class Decommissioned(VigilAggregate.Event):
        reason: str

        def apply(self, device: Device) -> None:
            device.status = DECOMMISSIONED

    def __init__(self, tenant_id: str) -> None:
        # Explicit, so the dataclass machinery eventsourcing applies to
        # aggregates keeps the base __init__ (and with it tenant_id).
        super().__init__(tenant_id)
        self.serial_number = ""
        self.hardware_profile = ""
        self.firmware_version: str | None = None
        self.fleet_id: UUID | None = None
        self.desired_model_id: UUID | None = None
        self.desired_model_version: str | None = None
        self.reported_model_id: UUID | None = None
        self.reported_model_version: str | None = None
        self.status = REGISTERED
        self.last_seen_at: datetime | None = None
        self.anomaly_count = 0
        self.last_install_error: str | None = None

    @classmethod
    def register(
        cls,
        *,
        tenant_id: str,
        serial_number: str,
        hardware_profile: str,
        actor: str,
        at: datetime,
        firmware_version: str | None = None,
    ) -> Device:
        if not isinstance(serial_number, str) or not _SERIAL_RE.match(serial_number):
            raise errors.InvalidValue(
                "serial_number", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
            )
        ensure_text("hardware_profile", hardware_profile, max_length=_MAX_PROFILE_LENGTH)
        if firmware_version is not None:
            ensure_text("firmware_version", firmware_version, max_length=_MAX_PROFILE_LENGTH)
        device: Device = cls._start(
            cls.Registered,
            id=identity.device_id(tenant_id, serial_number),
            tenant_id=tenant_id,
            actor=actor,
            at=at,
            serial_number=serial_number,
            hardware_profile=hardware_profile,
            firmware_version=firmware_version,
        )
        return device

    # Desired state, owned by the cloud.

    def assign_to_fleet(self, fleet_id: UUID, *, actor: str, at: datetime) -> None:
        """Put the device in a fleet; a device belongs to at most one."""
        self._ensure_not_decommissioned()
        identity.ensure_uuid("fleet_id", fleet_id)
        self._ensure_not_in_a_fleet(requested=fleet_id)
        self._record(self.AssignedToFleet, actor=actor, at=at, fleet_id=fleet_id)

    def remove_from_fleet(self, *, actor: str, at: datetime) -> None:
        self._ensure_not_decommissioned()
        current = self._ensure_in_a_fleet()
        self._record(self.RemovedFromFleet, actor=actor, at=at, fleet_id=current)

    def set_desired_model(
        self, model_id: UUID, model_version: str, *, actor: str, at: datetime
    ) -> None:
        """Record which model the cloud wants this device to run."""
        self._ensure_not_decommissioned()
        identity.ensure_uuid("model_id", model_id)
        ensure_model_version("model_version", model_version)
        if (self.desired_model_id, self.desired_model_version) == (model_id, model_version):
            raise errors.DesiredModelAlreadySet(self.id, model_version)
        self._record(
            self.DesiredModelSet,
            actor=actor,
            at=at,
            model_id=model_id,
            model_version=model_version,
        )

    def decommission(self, reason: str, *, actor: str, at: datetime) -> None:
        """Retire the device for good; every later command is refused."""
        self._ensure_not_decommissioned()
        ensure_text("reason", reason, max_length=_MAX_REASON_LENGTH)
        self._record(self.Decommissioned, actor=actor, at=at, reason=reason)

    # Reported state, owned by the device.

    def report_install_succeeded(
        self, model_id: UUID, model_version: str, *, actor: str, at: datetime
    ) -> None:
        self._ensure_not_decommissioned()
        identity.ensure_uuid("model_id", model_id)
        ensure_model_version("model_version", model_version)
        self._record(
            self.ModelInstallSucceeded,
            actor=actor,
            at=at,
            model_id=model_id,
            model_version=model_version,
        )

    def report_install_failed(
        self, model_id: UUID, model_version: str, reason: str, *, actor: str, at: datetime
    ) -> None:
        self._ensure_not_decommissioned()
        identity.ensure_uuid("model_id", model_id)
        ensure_model_version("model_version", model_version)
        ensure_text("reason", reason, max_length=_MAX_REASON_LENGTH)
        self._record(
            self.ModelInstallFailed,
            actor=actor,
            at=at,
            model_id=model_id,
            model_version=model_version,
            reason=reason,
        )

    def go_offline(self, *, actor: str, at: datetime) -> None:
        self._ensure_not_decommissioned()
        if self.status == OFFLINE:
            raise errors.DeviceAlreadyOffline(self.id)
        self._record(self.WentOffline, actor=actor, at=at, last_seen_at=self.last_seen_at)

    def come_online(self, *, actor: str, at: datetime) -> None:
        self._ensure_not_decommissioned()
        if self.status == ONLINE:
            raise errors.DeviceAlreadyOnline(self.id)
        self._record(self.CameOnline, actor=actor, at=at)

    def raise_anomaly(
        self, kind: str, severity: str, detail: str, *, actor: str, at: datetime
    ) -> None:
        self._ensure_not_decommissioned()
        ensure_text("kind", kind, max_length=_MAX_KIND_LENGTH)
        if severity not in SEVERITIES:
            raise errors.InvalidValue("severity", f"must be one of {', '.join(SEVERITIES)}")
        if not isinstance(detail, str) or len(detail) > _MAX_DETAIL_LENGTH:
            raise errors.InvalidValue(
                "detail", f"must be text of at most {_MAX_DETAIL_LENGTH} characters"
            )
        self._record(
            self.AnomalyRaised, actor=actor, at=at, kind=kind, severity=severity, detail=detail
        )

    # Guards.

    def _ensure_not_decommissioned(self) -> None:
        if self.status == DECOMMISSIONED:
            raise errors.DeviceDecommissioned(self.id)

    def _ensure_not_in_a_fleet(self, *, requested: UUID) -> None:
        if self.fleet_id is not None:
            raise errors.DeviceAlreadyInFleet(self.id, self.fleet_id, requested)

    def _ensure_in_a_fleet(self) -> UUID:
        if self.fleet_id is None:
            raise errors.DeviceNotInFleet(self.id)
        return self.fleet_id
