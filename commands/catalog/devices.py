"""Device commands: cloud-owned intents (fleet, desired model, decommission) and
device-reported facts (installs, connectivity, anomalies)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from commands.spec import CommandBody, CommandSpec, Context, Role
from domain.device import Device
from domain.identity import device_id


class RegisterDevice(CommandBody):
    serial_number: str
    hardware_profile: str
    firmware_version: str | None = None


class DeviceCommand(CommandBody):
    device_id: UUID


class AssignDeviceToFleet(DeviceCommand):
    fleet_id: UUID


class RemoveDeviceFromFleet(DeviceCommand):
    pass


class SetDesiredModel(DeviceCommand):
    model_id: UUID
    model_version: str


class ReportInstallSucceeded(DeviceCommand):
    model_id: UUID
    model_version: str


class ReportInstallFailed(DeviceCommand):
    model_id: UUID
    model_version: str
    reason: str


class MarkDeviceOffline(DeviceCommand):
    pass


class MarkDeviceOnline(DeviceCommand):
    pass


class RaiseAnomaly(DeviceCommand):
    kind: str
    severity: str
    detail: str = ""


class DecommissionDevice(DeviceCommand):
    reason: str


def _target(body: DeviceCommand, _tenant: str) -> UUID:
    return body.device_id


def _register(_: Device | None, body: RegisterDevice, ctx: Context) -> Device:
    return Device.register(
        tenant_id=ctx.tenant,
        serial_number=body.serial_number,
        hardware_profile=body.hardware_profile,
        firmware_version=body.firmware_version,
        actor=ctx.actor,
        at=ctx.at,
    )


def _assign(device: Device, body: AssignDeviceToFleet, ctx: Context) -> Device:
    device.assign_to_fleet(body.fleet_id, actor=ctx.actor, at=ctx.at)
    return device


def _remove(device: Device, body: RemoveDeviceFromFleet, ctx: Context) -> Device:
    device.remove_from_fleet(actor=ctx.actor, at=ctx.at)
    return device


def _set_desired(device: Device, body: SetDesiredModel, ctx: Context) -> Device:
    device.set_desired_model(body.model_id, body.model_version, actor=ctx.actor, at=ctx.at)
    return device


def _install_ok(device: Device, body: ReportInstallSucceeded, ctx: Context) -> Device:
    device.report_install_succeeded(body.model_id, body.model_version, actor=ctx.actor, at=ctx.at)
    return device


def _install_failed(device: Device, body: ReportInstallFailed, ctx: Context) -> Device:
    device.report_install_failed(
        body.model_id, body.model_version, body.reason, actor=ctx.actor, at=ctx.at
    )
    return device


def _offline(device: Device, body: MarkDeviceOffline, ctx: Context) -> Device:
    device.go_offline(actor=ctx.actor, at=ctx.at)
    return device


def _online(device: Device, body: MarkDeviceOnline, ctx: Context) -> Device:
    device.come_online(actor=ctx.actor, at=ctx.at)
    return device


def _anomaly(device: Device, body: RaiseAnomaly, ctx: Context) -> Device:
    device.raise_anomaly(body.kind, body.severity, body.detail, actor=ctx.actor, at=ctx.at)
    return device


def _decommission(device: Device, body: DecommissionDevice, ctx: Context) -> Device:
    device.decommission(body.reason, actor=ctx.actor, at=ctx.at)
    return device


DEVICE_COMMANDS: list[CommandSpec[Any]] = [
    CommandSpec(
        "RegisterDevice",
        RegisterDevice,
        Device,
        lambda body, tenant: device_id(tenant, body.serial_number),
        _register,
        creates=True,
        summary="Register a device by serial number; its id derives from tenant and serial.",
    ),
    CommandSpec(
        "AssignDeviceToFleet",
        AssignDeviceToFleet,
        Device,
        _target,
        _assign,
        summary="Put a device in a fleet (a device is in at most one fleet).",
    ),
    CommandSpec(
        "RemoveDeviceFromFleet",
        RemoveDeviceFromFleet,
        Device,
        _target,
        _remove,
        summary="Take a device out of its fleet.",
    ),
    CommandSpec(
        "SetDesiredModel",
        SetDesiredModel,
        Device,
        _target,
        _set_desired,
        summary="Set the model the cloud wants the device to run.",
    ),
    CommandSpec(
        "ReportInstallSucceeded",
        ReportInstallSucceeded,
        Device,
        _target,
        _install_ok,
        summary="The device reports a model installed.",
    ),
    CommandSpec(
        "ReportInstallFailed",
        ReportInstallFailed,
        Device,
        _target,
        _install_failed,
        summary="The device reports a model install failed, with the reason.",
    ),
    CommandSpec(
        "MarkDeviceOffline",
        MarkDeviceOffline,
        Device,
        _target,
        _offline,
        summary="The device stopped reporting.",
    ),
    CommandSpec(
        "MarkDeviceOnline",
        MarkDeviceOnline,
        Device,
        _target,
        _online,
        summary="The device is reporting again.",
    ),
    CommandSpec(
        "RaiseAnomaly",
        RaiseAnomaly,
        Device,
        _target,
        _anomaly,
        summary="The device saw something abnormal (severity info, warning, critical).",
    ),
    CommandSpec(
        "DecommissionDevice",
        DecommissionDevice,
        Device,
        _target,
        _decommission,
        role=Role.admin,
        summary="Retire a device for good; it then rejects every command.",
    ),
]
