"""Every command Vigil accepts, one module per aggregate."""

from __future__ import annotations

from typing import Any

from commands.catalog.devices import DEVICE_COMMANDS
from commands.catalog.fleets import FLEET_COMMANDS
from commands.catalog.models import MODEL_COMMANDS
from commands.spec import CommandSpec, registry

COMMANDS: dict[str, CommandSpec[Any]] = registry(DEVICE_COMMANDS, FLEET_COMMANDS, MODEL_COMMANDS)
