"""How a command is described: its body schema, the aggregate it targets and who may send it.

Each command is one ``CommandSpec`` in ``commands/catalog/``; the HTTP layer,
the OpenAPI document and the service all read the same registry, so a command
exists in exactly one place.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from domain.base import VigilAggregate


class Role(enum.IntEnum):
    """Roles are ordered: each includes everything the ones below it may do."""

    viewer = 1
    operator = 2
    admin = 3


class CommandBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for command bodies. ``occurred_at`` defaults to the time the API received it."""

    occurred_at: datetime | None = None


B = TypeVar("B", bound=CommandBody)


@dataclass(frozen=True, slots=True)
class Context:
    """Who sends the command, for which tenant, and when it happened."""

    tenant: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class CommandSpec(Generic[B]):
    """One command: ``target`` names the aggregate, ``handle`` decides on it.

    ``handle`` receives the current aggregate (``None`` when it does not exist
    yet, only for commands that ``creates``) and returns the aggregate holding
    the new, uncollected events.
    """

    name: str
    body: type[B]
    aggregate: type[VigilAggregate]
    target: Callable[[B, str], UUID]
    handle: Callable[[Any, B, Context], VigilAggregate]
    role: Role = Role.operator
    creates: bool = False
    summary: str = ""

    @property
    def aggregate_type(self) -> str:
        return self.aggregate.TYPE


def registry(*catalogues: list[CommandSpec[Any]]) -> dict[str, CommandSpec[Any]]:
    specs: dict[str, CommandSpec[Any]] = {}
    for catalogue in catalogues:
        for spec in catalogue:
            if spec.name in specs:
                raise ValueError(f"command {spec.name} is defined twice")
            specs[spec.name] = spec
    return specs
