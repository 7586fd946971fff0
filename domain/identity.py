"""Deterministic aggregate ids: the same natural key always names the same aggregate.

Registering a device twice, or creating a fleet or model under a name already
taken, lands on an existing stream instead of a silent twin, which makes create
commands idempotent and lets the cloud spot a duplicate before it is written.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from domain.errors import InvalidValue

# Fixed forever: changing it would rename every aggregate ever created.
# Tenant ids, serial numbers and model names cannot contain "/", so two
# different natural keys never build the same name below.
VIGIL_NAMESPACE = UUID("ec7e41f4-6d32-4920-b3ff-54c9de00b945")


def device_id(tenant_id: str, serial_number: str) -> UUID:
    return uuid5(VIGIL_NAMESPACE, f"device/{tenant_id}/{serial_number}")


def fleet_id(tenant_id: str, name: str) -> UUID:
    return uuid5(VIGIL_NAMESPACE, f"fleet/{tenant_id}/{name}")


def model_id(tenant_id: str, name: str, version: str) -> UUID:
    return uuid5(VIGIL_NAMESPACE, f"model/{tenant_id}/{name}/{version}")


def ensure_uuid(field: str, value: Any) -> None:
    """Ids travel inside events, so they must be real UUIDs, not their text."""
    if not isinstance(value, UUID):
        raise InvalidValue(field, "must be a UUID")
