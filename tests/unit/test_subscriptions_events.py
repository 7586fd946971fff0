"""events(): replay, then live, with no gap and no duplicate, however the live feed lags or leads.

The store is the in-memory adapter and the test plays the live feed, calling
``dispatch`` exactly when the race it wants to provoke needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from commands.catalog import COMMANDS
from commands.catalog.devices import RaiseAnomaly, RegisterDevice
from commands.spec import Context
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.memory import InMemoryEventStore
from infrastructure.eventstore.port import RecordedCommit
from read_api.subscriptions.events import EventFilter, LiveEvents, SlowSubscription, json_value
from tests.support.api import SECRET
from vigil.bootstrap import build_services


class World:
    """An in-memory store, the command service on it, and a hand-driven live feed."""

    def __init__(self, queue_size: int = 100) -> None:
        self.store = InMemoryEventStore()
        self.service = build_services(self.store, jwt_secret=SECRET).service
        self.live = LiveEvents(self.store, build_mapper(), queue_size=queue_size)
        self.dispatched = 0

    async def commit(self, tenant: str, device: uuid.UUID | None = None, n: int = 0) -> Any:
        ctx = Context(tenant, "tester", datetime.now(UTC))
        if device is None:
            body: Any = RegisterDevice(serial_number=f"SN-{uuid.uuid4().hex}", hardware_profile="x")
            return (await self.service.execute(COMMANDS["RegisterDevice"], body, ctx)).result
        body = RaiseAnomaly(device_id=device, kind=f"k{n}", severity="info")
        return (await self.service.execute(COMMANDS["RaiseAnomaly"], body, ctx)).result

    async def feed(self, up_to: int | None = None) -> None:
        """Dispatch what the feed has not dispatched yet, up to ``up_to``."""
        async for commit in self.store.read_all(self.dispatched + 1):
            if up_to is not None and commit.position > up_to:
                break
            self.live.dispatch(commit)
            self.dispatched = commit.position

    def stream(self, flt: EventFilter, after: int = 0):
        return contextlib.aclosing(self.live.stream(flt, after))


def positions(batches: list[list[Any]]) -> list[int]:
    return [record.position for batch in batches for record in batch]


@pytest.fixture
def world() -> World:
    return World()


async def test_history_then_live_with_no_gap_and_no_duplicate_when_the_feed_lags(world):
    device = (await world.commit("acme")).ref.id
    first = await world.commit("acme", device, 0)
    await world.feed()
    for n in range(1, 3):  # in the store, not dispatched yet: the feed lags
        await world.commit("acme", device, n)
    got = []
    async with world.stream(EventFilter("acme")) as events:
        for _ in range(4):  # replay reads the store, past what the feed dispatched
            got.append(await anext(events))
        later = await world.commit("acme", device, 9)
        await world.feed()  # dispatches what replay gave, then the new commit
        got.append(await anext(events))
    assert positions(got) == [1, first.position, 3, 4, later.position]


async def test_a_subscription_at_the_head_reads_nothing_from_the_store(world):
    device = (await world.commit("acme")).ref.id
    await world.feed()
    reads: list[int] = []
    real = world.live._replay

    def counted(flt: EventFilter, start: int):
        reads.append(start)
        return real(flt, start)

    world.live._replay = counted
    live = asyncio.Event()
    stream = world.live.stream(EventFilter("acme"), world.dispatched, on_live=live.set)
    async with contextlib.aclosing(stream) as events:
        waiting = asyncio.ensure_future(anext(events))
        await live.wait()
        position = (await world.commit("acme", device, 0)).position
        await world.feed()
        assert positions([await waiting]) == [position]
    assert reads == []


async def test_a_commit_the_feed_dispatches_during_replay_is_replayed_not_lost(world):
    device = (await world.commit("acme")).ref.id
    await world.commit("acme", device, 0)
    await world.feed()
    got = []
    async with world.stream(EventFilter("acme")) as events:
        got.append(await anext(events))  # replay read the head (2) before this commit
        racing = await world.commit("acme", device, 1)
        await world.feed()  # the feed goes past what this replay pass covers
        got.append(await anext(events))
        got.append(await anext(events))  # from a second replay pass
        last = await world.commit("acme", device, 2)
        await world.feed()
        got.append(await anext(events))  # live
    assert positions(got) == [1, 2, racing.position, last.position]


async def test_resuming_after_a_position_skips_everything_up_to_it(world):
    device = (await world.commit("acme")).ref.id
    results = [await world.commit("acme", device, n) for n in range(4)]
    await world.feed()
    async with world.stream(EventFilter("acme"), after=results[1].position) as events:
        got = [await anext(events), await anext(events)]
    assert positions(got) == [results[2].position, results[3].position]


async def test_filters_by_tenant_aggregate_and_event_type(world):
    acme_a = (await world.commit("acme")).ref.id
    acme_b = (await world.commit("acme")).ref.id
    globex = (await world.commit("globex")).ref.id
    anomaly = await world.commit("acme", acme_a, 0)
    await world.commit("globex", globex, 0)
    await world.commit("acme", acme_b, 0)
    await world.feed()
    by_id = EventFilter("acme", aggregate_id=acme_a)
    async with world.stream(by_id) as events:
        assert [r.aggregate_id for r in await anext(events)] == [acme_a]
        assert [r.position for r in await anext(events)] == [anomaly.position]
    anomalies = EventFilter("acme", event_types=frozenset({"AnomalyRaised"}))
    async with world.stream(anomalies) as events:
        first, second = await anext(events), await anext(events)
    assert [r.type for r in first + second] == ["AnomalyRaised", "AnomalyRaised"]
    assert {r.aggregate_id for r in first + second} == {acme_a, acme_b}


async def test_a_subscription_that_falls_too_far_behind_the_feed_fails_loudly():
    world = World(queue_size=2)
    device = (await world.commit("acme")).ref.id
    await world.feed()
    live = asyncio.Event()
    async with contextlib.aclosing(
        world.live.stream(EventFilter("acme"), 0, on_live=live.set)
    ) as events:
        await anext(events)  # the registration, replayed
        waiting = asyncio.ensure_future(anext(events))
        await live.wait()
        for n in range(3):  # one more than its queue holds, before it reads any
            await world.commit("acme", device, n)
        await world.feed()
        with pytest.raises(SlowSubscription):
            await waiting


def test_event_fields_become_json():
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.uuid4()
    assert json_value({"at": stamp, "ids": (ident,), "raw": b"\x00"}) == {
        "at": "2026-01-02T03:04:05+00:00",
        "ids": [str(ident)],
        "raw": "AA==",
    }


def test_dispatch_tracks_the_feed_position(world):
    assert world.live.position == 0
    commit = RecordedCommit(ref=_ref(), position=7, events=())
    world.live.dispatch(commit)
    assert world.live.position == 7


def _ref() -> Any:
    from infrastructure.eventstore.port import StreamRef

    return StreamRef("acme", "device", uuid.uuid4())
