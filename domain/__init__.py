"""Vigil's write model: the Device, Fleet and Model aggregates and their rules.

Imports only the standard library and ``eventsourcing``; everything that talks
to the outside world lives in ``commands``, ``infrastructure`` and friends.
"""

from domain.device import Device
from domain.errors import DomainError, InvalidValue
from domain.fleet import Fleet
from domain.model import Model

__all__ = ["Device", "DomainError", "Fleet", "InvalidValue", "Model"]
