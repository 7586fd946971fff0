"""What every Vigil aggregate and event shares: a tenant, an actor and a time.

Events record *who* (``actor``) and *when* (``timestamp``, exposed as
``occurred_at``); both come from the command. Nothing here reads the clock, so
replaying the same events always rebuilds the same state.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from domain.errors import InvalidValue

_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def ensure_tenant_id(tenant_id: str) -> None:
    """Tenant ids become NATS subject tokens, so they are kept to a safe alphabet."""
    if not isinstance(tenant_id, str) or not _TENANT_RE.match(tenant_id):
        raise InvalidValue("tenant_id", "must match [a-z0-9][a-z0-9_-]{0,62}")


def ensure_text(field: str, value: Any, *, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidValue(field, f"must be 1 to {max_length} characters, not blank")


def ensure_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidValue("occurred_at", "must be timezone-aware")


def ensure_actor(actor: str) -> None:
    if not actor or not isinstance(actor, str):
        raise InvalidValue("actor", "must be a non-empty string")


class VigilAggregate(Aggregate):
    """Base for Device, Fleet and Model: owned by one tenant."""

    # Short name used in subjects and APIs. ClassVar, so the dataclass machinery
    # eventsourcing applies to aggregates does not turn it into an __init__ field.
    TYPE: ClassVar[str] = ""

    class Event(Aggregate.Event):
        actor: str

        @property
        def occurred_at(self) -> datetime:
            return self.timestamp

    class Created(Event, Aggregate.Created):
        tenant_id: str

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def _record(self, event_class: type[Any], *, actor: str, at: datetime, **fields: Any) -> None:
        """Trigger ``event_class`` stamped with the command's actor and time."""
        ensure_actor(actor)
        ensure_aware(at)
        self.trigger_event(event_class, actor=actor, timestamp=at, **fields)

    @classmethod
    def _start(
        cls,
        event_class: type[Any],
        *,
        id: Any,
        tenant_id: str,
        actor: str,
        at: datetime,
        **fields: Any,
    ) -> Any:
        """Create the aggregate with its first event, stamped like every other."""
        ensure_tenant_id(tenant_id)
        ensure_actor(actor)
        ensure_aware(at)
        return cls._create(
            event_class, id=id, tenant_id=tenant_id, actor=actor, timestamp=at, **fields
        )
