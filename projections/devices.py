"""The devices read model: one row per device, and per-fleet device counts.

Health is derived from what the device reports, with rules an operator can
predict:

* ``unknown`` until the device first comes online;
* ``healthy`` when it comes online or installs a model successfully (a fresh
  start clears earlier trouble);
* a ``warning`` anomaly or a failed install makes it at least ``degraded``; a
  ``critical`` anomaly makes it ``critical``; ``info`` anomalies are counted
  but leave health alone;
* going offline or being decommissioned leaves health as it was: ``status``
  already says so, and the last known health is what an operator wants then.

``fleet_device_counts`` holds, per fleet, how many devices are in each status
and on each reported model version (``""``: none reported yet). The writer
keeps it in step from each device's row before and after the batch, in the
same transaction as the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain import device as d
from domain.device import Device
from projections import bulk
from projections.rows import Apply, Changes, Row, RowProjection

UNKNOWN, HEALTHY, DEGRADED, CRITICAL = "unknown", "healthy", "degraded", "critical"
_HEALTH_RANK = {UNKNOWN: 0, HEALTHY: 1, DEGRADED: 2, CRITICAL: 3}
_SEVERITY_HEALTH = {"warning": DEGRADED, "critical": CRITICAL}


def _at_least(current: str, floor: str) -> str:
    return floor if _HEALTH_RANK[floor] > _HEALTH_RANK[current] else current


def registered(row: Mapping[str, Any], e: Device.Registered) -> Changes:
    return {
        "serial_number": e.serial_number,
        "hardware_profile": e.hardware_profile,
        "firmware_version": e.firmware_version,
        "status": d.REGISTERED,
        "fleet_id": None,
        "desired_model_id": None,
        "desired_model_version": None,
        "reported_model_id": None,
        "reported_model_version": None,
        "last_install_error": None,
        "last_seen_at": None,
        "health": UNKNOWN,
        "anomaly_count": 0,
        "last_anomaly_at": None,
        "last_anomaly_kind": None,
        "last_anomaly_severity": None,
    }


def assigned_to_fleet(row: Mapping[str, Any], e: Device.AssignedToFleet) -> Changes:
    return {"fleet_id": e.fleet_id}


def removed_from_fleet(row: Mapping[str, Any], e: Device.RemovedFromFleet) -> Changes:
    return {"fleet_id": None}


def desired_model_set(row: Mapping[str, Any], e: Device.DesiredModelSet) -> Changes:
    return {"desired_model_id": e.model_id, "desired_model_version": e.model_version}


def install_succeeded(row: Mapping[str, Any], e: Device.ModelInstallSucceeded) -> Changes:
    return {
        "reported_model_id": e.model_id,
        "reported_model_version": e.model_version,
        "last_install_error": None,
        "health": HEALTHY,
    }


def install_failed(row: Mapping[str, Any], e: Device.ModelInstallFailed) -> Changes:
    return {"last_install_error": e.reason, "health": _at_least(row["health"], DEGRADED)}


def went_offline(row: Mapping[str, Any], e: Device.WentOffline) -> Changes:
    return {"status": d.OFFLINE, "last_seen_at": e.last_seen_at}


def came_online(row: Mapping[str, Any], e: Device.CameOnline) -> Changes:
    return {"status": d.ONLINE, "last_seen_at": e.timestamp, "health": HEALTHY}


def anomaly_raised(row: Mapping[str, Any], e: Device.AnomalyRaised) -> Changes:
    floor = _SEVERITY_HEALTH.get(e.severity)
    return {
        "anomaly_count": row["anomaly_count"] + 1,
        "last_anomaly_at": e.timestamp,
        "last_anomaly_kind": e.kind,
        "last_anomaly_severity": e.severity,
        "health": row["health"] if floor is None else _at_least(row["health"], floor),
    }


def decommissioned(row: Mapping[str, Any], e: Device.Decommissioned) -> Changes:
    return {"status": d.DECOMMISSIONED}


APPLIES: dict[type, Apply] = {
    Device.Registered: registered,
    Device.AssignedToFleet: assigned_to_fleet,
    Device.RemovedFromFleet: removed_from_fleet,
    Device.DesiredModelSet: desired_model_set,
    Device.ModelInstallSucceeded: install_succeeded,
    Device.ModelInstallFailed: install_failed,
    Device.WentOffline: went_offline,
    Device.CameOnline: came_online,
    Device.AnomalyRaised: anomaly_raised,
    Device.Decommissioned: decommissioned,
}

CountKey = tuple[str, Any, str, str]  # tenant, fleet, dimension, key


def fleet_counts(row: Mapping[str, Any] | None) -> list[CountKey]:
    """What one device row contributes to its fleet's counts (nothing outside a fleet)."""
    if row is None or row.get("fleet_id") is None:
        return []
    tenant, fleet = row["tenant_id"], row["fleet_id"]
    return [
        (tenant, fleet, "status", row["status"]),
        (tenant, fleet, "model", row["reported_model_version"] or ""),
    ]


def _counted(row: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return row["fleet_id"], row["status"], row["reported_model_version"]


def count_deltas(before: Mapping[str, Row | None], after: Mapping[str, Row]) -> Counter[CountKey]:
    """How fleet counts change when the rows ``after`` replace the rows ``before``."""
    deltas: Counter[CountKey] = Counter()
    for key, new in after.items():
        old = before.get(key)
        if old is not None and _counted(old) == _counted(new):
            continue  # most events (anomalies...) leave the counts alone
        for count_key in fleet_counts(old):
            deltas[count_key] -= 1
        for count_key in fleet_counts(new):
            deltas[count_key] += 1
    return deltas


class DevicesProjection(RowProjection):
    name = "devices"
    aggregate_types = frozenset({Device.TYPE})
    table_names = ("devices", "fleet_device_counts")
    applies = APPLIES
    creates = frozenset({Device.Registered})

    async def write_rows(
        self, conn: AsyncConnection, before: Mapping[str, Row | None], rows: Mapping[str, Row]
    ) -> None:
        await bulk.upsert(conn, self.table, list(rows.values()))
        deltas = count_deltas(before, rows)
        await bulk.add_counts(conn, self.tables["fleet_device_counts"], deltas)
