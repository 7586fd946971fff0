"""Given events, when a command, then events or an error.

``given`` rebuilds an aggregate the way a repository replays a stream: each
event mutates the result of the one before, and nothing is left pending. The
command under test is then a plain method call, and ``then_events`` or
``then_error`` says what it decided.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTOR = "operator@acme"


class Stamp(TypedDict):
    actor: str
    at: datetime


BY: Stamp = {"actor": ACTOR, "at": AT}  # who and when, for every command under test
GIVEN_ACTOR = "history"

A = TypeVar("A", bound=Aggregate)
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class Fact:
    """An event class and the fields that matter; ids, versions and stamps are filled in."""

    event_class: type[Any]
    fields: dict[str, Any] = field(default_factory=dict)


def fact(event_class: type[Any], **fields: Any) -> Fact:
    return Fact(event_class, fields)


def given(aggregate_class: type[A], *facts: Fact, id: UUID | None = None) -> A:
    """The aggregate these facts, the first being its creation, add up to."""
    originator_id = id or uuid4()
    aggregate: Any = None
    for index, known in enumerate(facts):
        stamps: dict[str, Any] = {
            "originator_id": originator_id,
            "originator_version": index + 1,
            "timestamp": AT - timedelta(hours=1) + timedelta(seconds=index),
            "actor": GIVEN_ACTOR,
        }
        if index == 0:
            stamps["originator_topic"] = get_topic(aggregate_class)
        aggregate = known.event_class(**stamps, **known.fields).mutate(aggregate)
    assert isinstance(aggregate, aggregate_class)
    return aggregate


def then_events(aggregate: Aggregate, expected: Sequence[type[Any] | Fact]) -> list[Any]:
    """Collect what the command recorded: these event types in this order, with these fields."""
    events = list(aggregate.collect_events())
    assert [type(event).__qualname__ for event in events] == [
        _event_class(item).__qualname__ for item in expected
    ]
    for event, item in zip(events, expected, strict=True):
        if isinstance(item, Fact):
            actual = {name: getattr(event, name) for name in item.fields}
            assert actual == item.fields, type(event).__qualname__
    return events


def then_error(command: Callable[..., Any], error_class: type[E], *args: Any, **kwargs: Any) -> E:
    """The command raises ``error_class`` and leaves its aggregate exactly as it was."""
    target = getattr(command, "__self__", None)
    before = copy.deepcopy(vars(target)) if isinstance(target, Aggregate) else None
    with pytest.raises(error_class) as caught:
        command(*args, **kwargs)
    if isinstance(target, Aggregate):
        assert target.pending_events == [], "a rejected command recorded events"
        assert vars(target) == before, "a rejected command changed state"
    return caught.value


def replayed(events: Sequence[Any]) -> Any:
    """Rebuild from recorded events, as loading the stream would."""
    aggregate: Any = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _event_class(item: type[Any] | Fact) -> type[Any]:
    return item.event_class if isinstance(item, Fact) else item
