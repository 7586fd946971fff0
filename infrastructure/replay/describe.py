"""Events and aggregates as plain data, for people (tables, lines) and tools (JSON)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

# What every Vigil event carries; shown in their own columns rather than as data.
_EVENT_ENVELOPE = {"originator_id", "originator_version", "originator_topic", "timestamp", "actor"}


def event_name(topic: str) -> str:
    """``domain.device:Device.Registered`` -> ``Device.Registered``."""
    return topic.rpartition(":")[2] or topic


def matches_event(topic: str, wanted: Iterable[str]) -> bool:
    """True if ``topic`` is one of ``wanted``: a topic, ``Device.Registered`` or ``Registered``."""
    name = event_name(topic)
    return any(w in (topic, name) or name.endswith("." + w) for w in wanted)


def event_actor(event: Any) -> str | None:
    actor = getattr(event, "actor", None)
    return actor if isinstance(actor, str) else None


def event_time(event: Any) -> datetime | None:
    at = getattr(event, "timestamp", None)
    return at if isinstance(at, datetime) else None


def event_data(event: Any) -> dict[str, Any]:
    """What the event says beyond who, when and which aggregate."""
    return {k: v for k, v in vars(event).items() if k not in _EVENT_ENVELOPE}


def aggregate_state(aggregate: Any) -> dict[str, Any]:
    """The aggregate's identity, version and public attributes, in that order."""
    state: dict[str, Any] = {
        "id": aggregate.id,
        "version": aggregate.version,
        "created_on": aggregate.created_on,
        "modified_on": aggregate.modified_on,
    }
    state.update((k, v) for k, v in vars(aggregate).items() if not k.startswith("_"))
    return state


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    """Compact JSON for any event or state value (UUIDs, datetimes, Decimals...)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def show_value(value: Any) -> str:
    """A value as a table cell: strings bare, everything else as JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return to_json(value)


def show_data(data: Mapping[str, Any], width: int = 120, sep: str = " ") -> str:
    """``key=value`` pairs joined by ``sep``, each cut to ``width`` characters."""
    pairs = (f"{k}={show_value(v)}" for k, v in data.items())
    return sep.join(p if len(p) <= width else p[: width - 1] + "…" for p in pairs)
