from __future__ import annotations

from datetime import datetime, timedelta
from types import FunctionType
from uuid import uuid4

import pytest

from domain import errors
from domain.device import Device
from domain.identity import device_id
from tests.unit.given_when_then import (
    ACTOR,
    AT,
    BY,
    fact,
    given,
    replayed,
    then_error,
    then_events,
)

FLEET_A = uuid4()
FLEET_B = uuid4()
MODEL_1 = uuid4()
MODEL_2 = uuid4()

REGISTERED = fact(
    Device.Registered, tenant_id="acme", serial_number="SN-0001", hardware_profile="jetson-orin"
)
IN_FLEET_A = fact(Device.AssignedToFleet, fleet_id=FLEET_A)
ONLINE = fact(Device.CameOnline)
OFFLINE = fact(Device.WentOffline, last_seen_at=None)
DECOMMISSIONED = fact(Device.Decommissioned, reason="water damage")


def register(**overrides: object) -> Device:
    fields: dict[str, object] = {
        "tenant_id": "acme",
        "serial_number": "SN-0001",
        "hardware_profile": "jetson-orin",
        **BY,
    }
    fields.update(overrides)
    return Device.register(**fields)  # type: ignore[arg-type]


# Registration


def test_registering_a_device_records_its_serial_number_and_hardware_profile() -> None:
    device = register()

    then_events(
        device,
        [fact(Device.Registered, serial_number="SN-0001", hardware_profile="jetson-orin")],
    )
    assert device.id == device_id("acme", "SN-0001")
    assert (device.TYPE, device.tenant_id, device.status) == ("device", "acme", "registered")
    assert device.fleet_id is None and device.desired_model_id is None
    assert device.reported_model_version is None and device.last_seen_at is None
    assert device.anomaly_count == 0 and device.last_install_error is None


def test_a_device_id_follows_from_tenant_and_serial_number() -> None:
    assert register().id == register().id
    assert register().id != register(tenant_id="globex").id
    assert register().id != register(serial_number="SN-0002").id


@pytest.mark.parametrize("serial", ["", "x" * 65, "has space", "slash/ed", "ünicode", 42])
def test_a_serial_number_outside_the_safe_alphabet_is_rejected(serial: object) -> None:
    error = then_error(register, errors.InvalidValue, serial_number=serial)
    assert error.field == "serial_number"


@pytest.mark.parametrize("profile", ["", "   ", "p" * 65])
def test_a_blank_or_overlong_hardware_profile_is_rejected(profile: str) -> None:
    error = then_error(register, errors.InvalidValue, hardware_profile=profile)
    assert error.field == "hardware_profile"


def test_a_tenant_id_outside_the_safe_alphabet_is_rejected() -> None:
    error = then_error(register, errors.InvalidValue, tenant_id="Acme Corp")
    assert error.field == "tenant_id"


def test_registering_with_a_naive_datetime_is_rejected() -> None:
    error = then_error(register, errors.InvalidValue, at=datetime(2026, 3, 1, 12, 0))
    assert error.field == "occurred_at"


# Who and when


def test_events_carry_the_actor_and_time_of_the_command() -> None:
    device = given(Device, REGISTERED)
    later = AT + timedelta(minutes=5)

    device.assign_to_fleet(FLEET_A, actor="alice@acme", at=later)

    [event] = then_events(device, [Device.AssignedToFleet])
    assert (event.actor, event.occurred_at) == ("alice@acme", later)


def test_a_command_with_a_naive_datetime_is_rejected() -> None:
    device = given(Device, REGISTERED)

    error = then_error(
        device.assign_to_fleet, errors.InvalidValue, FLEET_A, actor=ACTOR, at=datetime(2026, 3, 1)
    )
    assert error.field == "occurred_at"


def test_a_command_without_an_actor_is_rejected() -> None:
    device = given(Device, REGISTERED)

    error = then_error(device.come_online, errors.InvalidValue, actor="", at=AT)
    assert error.field == "actor"


# Fleet membership


def test_a_device_joins_a_fleet() -> None:
    device = given(Device, REGISTERED)

    device.assign_to_fleet(FLEET_A, **BY)

    then_events(device, [fact(Device.AssignedToFleet, fleet_id=FLEET_A)])
    assert device.fleet_id == FLEET_A


def test_a_device_in_one_fleet_cannot_join_another() -> None:
    device = given(Device, REGISTERED, IN_FLEET_A)

    error = then_error(device.assign_to_fleet, errors.DeviceAlreadyInFleet, FLEET_B, **BY)
    assert str(FLEET_A) in error.message and str(FLEET_B) in error.message


def test_assigning_a_device_to_the_fleet_it_is_in_is_rejected() -> None:
    device = given(Device, REGISTERED, IN_FLEET_A)

    then_error(device.assign_to_fleet, errors.DeviceAlreadyInFleet, FLEET_A, **BY)


def test_a_fleet_id_must_be_a_uuid() -> None:
    device = given(Device, REGISTERED)

    error = then_error(device.assign_to_fleet, errors.InvalidValue, str(FLEET_A), **BY)
    assert error.field == "fleet_id"


def test_a_device_leaves_its_fleet() -> None:
    device = given(Device, REGISTERED, IN_FLEET_A)

    device.remove_from_fleet(**BY)

    then_events(device, [fact(Device.RemovedFromFleet, fleet_id=FLEET_A)])
    assert device.fleet_id is None


def test_a_device_outside_any_fleet_cannot_leave_one() -> None:
    device = given(Device, REGISTERED)

    then_error(device.remove_from_fleet, errors.DeviceNotInFleet, **BY)


# Desired model (the cloud's side)


def test_the_cloud_sets_the_model_a_device_should_run() -> None:
    device = given(Device, REGISTERED)

    device.set_desired_model(MODEL_1, "1.0.0", **BY)

    then_events(device, [fact(Device.DesiredModelSet, model_id=MODEL_1, model_version="1.0.0")])
    assert (device.desired_model_id, device.desired_model_version) == (MODEL_1, "1.0.0")


def test_setting_the_desired_model_a_device_already_has_is_rejected() -> None:
    device = given(
        Device, REGISTERED, fact(Device.DesiredModelSet, model_id=MODEL_1, model_version="1.0.0")
    )

    then_error(device.set_desired_model, errors.DesiredModelAlreadySet, MODEL_1, "1.0.0", **BY)


@pytest.mark.parametrize(
    ("model_id", "version", "field"),
    [("not-a-uuid", "1.0.0", "model_id"), (MODEL_1, "latest", "model_version")],
)
def test_a_desired_model_needs_a_model_id_and_a_version(
    model_id: object, version: str, field: str
) -> None:
    device = given(Device, REGISTERED)

    error = then_error(device.set_desired_model, errors.InvalidValue, model_id, version, **BY)
    assert error.field == field


# Reported installs (the device's side)


def test_a_successful_install_becomes_the_reported_model_and_clears_the_last_error() -> None:
    device = given(
        Device,
        REGISTERED,
        fact(Device.ModelInstallFailed, model_id=MODEL_2, model_version="2.0.0", reason="oom"),
    )

    device.report_install_succeeded(MODEL_1, "1.0.0", **BY)

    then_events(
        device, [fact(Device.ModelInstallSucceeded, model_id=MODEL_1, model_version="1.0.0")]
    )
    assert (device.reported_model_id, device.reported_model_version) == (MODEL_1, "1.0.0")
    assert device.last_install_error is None


def test_a_failed_install_records_its_reason_and_keeps_the_reported_model() -> None:
    device = given(
        Device,
        REGISTERED,
        fact(Device.ModelInstallSucceeded, model_id=MODEL_1, model_version="1.0.0"),
    )

    device.report_install_failed(MODEL_2, "2.0.0", "checksum mismatch", **BY)

    then_events(device, [fact(Device.ModelInstallFailed, reason="checksum mismatch")])
    assert device.last_install_error == "checksum mismatch"
    assert device.reported_model_version == "1.0.0"


def test_a_failed_install_needs_a_reason() -> None:
    device = given(Device, REGISTERED)

    error = then_error(
        device.report_install_failed, errors.InvalidValue, MODEL_1, "1.0.0", " ", **BY
    )
    assert error.field == "reason"


# Liveness


def test_a_device_comes_online_and_is_seen_at_that_moment() -> None:
    device = given(Device, REGISTERED)

    device.come_online(**BY)

    then_events(device, [Device.CameOnline])
    assert (device.status, device.last_seen_at) == ("online", AT)


def test_an_online_device_cannot_come_online_again() -> None:
    device = given(Device, REGISTERED, ONLINE)

    then_error(device.come_online, errors.DeviceAlreadyOnline, **BY)


def test_a_device_goes_offline_remembering_when_it_was_last_seen() -> None:
    device = given(Device, REGISTERED, ONLINE)
    seen_at = device.last_seen_at

    device.go_offline(**BY)

    then_events(device, [fact(Device.WentOffline, last_seen_at=seen_at)])
    assert (device.status, device.last_seen_at) == ("offline", seen_at)


def test_an_offline_device_cannot_go_offline_again() -> None:
    device = given(Device, REGISTERED, ONLINE, OFFLINE)

    then_error(device.go_offline, errors.DeviceAlreadyOffline, **BY)


# Anomalies


def test_an_anomaly_is_recorded_and_counted() -> None:
    device = given(
        Device, REGISTERED, fact(Device.AnomalyRaised, kind="thermal", severity="info", detail="")
    )

    device.raise_anomaly("drift", "critical", "input mean moved 4 sigma", **BY)

    then_events(device, [fact(Device.AnomalyRaised, kind="drift", severity="critical")])
    assert device.anomaly_count == 2


def test_an_anomaly_needs_a_known_severity() -> None:
    device = given(Device, REGISTERED)

    error = then_error(device.raise_anomaly, errors.InvalidValue, "drift", "fatal", "", **BY)
    assert error.field == "severity"


def test_an_anomaly_needs_a_kind() -> None:
    device = given(Device, REGISTERED)

    error = then_error(device.raise_anomaly, errors.InvalidValue, "", "info", "", **BY)
    assert error.field == "kind"


# Decommissioning


def test_a_device_is_decommissioned_with_a_reason() -> None:
    device = given(Device, REGISTERED, IN_FLEET_A)

    device.decommission("water damage", **BY)

    then_events(device, [fact(Device.Decommissioned, reason="water damage")])
    assert device.status == "decommissioned"


def test_decommissioning_needs_a_reason() -> None:
    device = given(Device, REGISTERED)

    error = then_error(device.decommission, errors.InvalidValue, "", **BY)
    assert error.field == "reason"


EVERY_COMMAND = {
    "assign_to_fleet": (FLEET_B,),
    "remove_from_fleet": (),
    "set_desired_model": (MODEL_2, "2.0.0"),
    "report_install_succeeded": (MODEL_2, "2.0.0"),
    "report_install_failed": (MODEL_2, "2.0.0", "oom"),
    "go_offline": (),
    "come_online": (),
    "raise_anomaly": ("drift", "warning", "late"),
    "decommission": ("again",),
}


@pytest.mark.parametrize("command", sorted(EVERY_COMMAND))
def test_a_decommissioned_device_rejects_every_command(command: str) -> None:
    device = given(Device, REGISTERED, IN_FLEET_A, DECOMMISSIONED)

    then_error(getattr(device, command), errors.DeviceDecommissioned, *EVERY_COMMAND[command], **BY)


def test_the_decommission_check_covers_every_public_command() -> None:
    public = {
        name
        for name, value in vars(Device).items()
        if isinstance(value, FunctionType | classmethod) and not name.startswith("_")
    }
    assert public == set(EVERY_COMMAND) | {"register"}


# Replay


def test_replaying_a_devices_events_rebuilds_an_equal_device() -> None:
    device = register()
    steps = [
        lambda: device.assign_to_fleet(FLEET_A, **BY),
        lambda: device.come_online(**BY),
        lambda: device.set_desired_model(MODEL_1, "1.0.0", **BY),
        lambda: device.report_install_failed(MODEL_1, "1.0.0", "oom", **BY),
        lambda: device.report_install_succeeded(MODEL_1, "1.0.0", **BY),
        lambda: device.raise_anomaly("drift", "warning", "", **BY),
        lambda: device.go_offline(**BY),
        lambda: device.remove_from_fleet(**BY),
        lambda: device.decommission("end of life", **BY),
    ]
    for step in steps:
        step()
    events = device.collect_events()

    assert replayed(events) == device
    assert replayed(events) == replayed(events)
    assert device.version == len(steps) + 1


# Errors


def test_every_domain_error_has_its_own_code() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError)
    ]
    codes = [error_class.code for error_class in classes]
    assert len(classes) > 15
    assert len(set(codes)) == len(codes)
