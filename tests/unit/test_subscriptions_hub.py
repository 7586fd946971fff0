"""The fan-out hub: shared executions, per-subscriber queues and their slow-consumer policies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import pytest

from read_api.subscriptions.hub import ExecutionFailed, FanOut, SubscriptionKey
from read_api.subscriptions.queues import Member, Outbox, Policy, error_list


class Socket:
    """A websocket stand-in: records frames, and can hold them back like a slow client."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.open = asyncio.Event()
        self.open.set()
        self.arrived = asyncio.Condition()

    async def send(self, frame: str) -> None:
        await self.open.wait()
        async with self.arrived:
            self.frames.append(json.loads(frame))
            self.arrived.notify_all()

    async def wait_for(self, count: int) -> list[dict]:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.frames) >= count)
        return self.frames


END = object()


class Source:
    """A producer the test drives: each ``emit`` becomes one result; ``END`` ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.runs = 0
        self.closed = asyncio.Event()

    async def produce(self) -> AsyncGenerator[str, None]:
        self.runs += 1
        try:
            while True:
                item = await self.queue.get()
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield json.dumps({"data": {"n": item}})
        finally:
            self.closed.set()

    def emit(self, n: object) -> None:
        plain = n is END or isinstance(n, BaseException)
        self.queue.put_nowait(n if plain else json.dumps(n))


def key(tenant: str = "acme") -> SubscriptionKey:
    return SubscriptionKey.of(tenant, "viewer", "subscription { events { position } }", None, {})


@pytest.fixture
async def connection() -> AsyncIterator[Callable[[], Awaitable[tuple[Socket, Outbox]]]]:
    """Opens connections (a socket and its outbox); closes them after the test."""
    outboxes: list[Outbox] = []

    async def open_one() -> tuple[Socket, Outbox]:
        socket = Socket()
        outbox = Outbox(socket.send)
        outbox.start()
        outboxes.append(outbox)
        return socket, outbox

    yield open_one
    for outbox in outboxes:
        await outbox.close()


def payloads(frames: list[dict], op_id: str) -> list[object]:
    return [
        json.loads(f["payload"]["data"]["n"])
        for f in frames
        if f.get("id") == op_id and f["type"] == "next"
    ]


async def test_subscribers_of_one_key_share_one_execution_and_all_get_each_result(connection):
    fanout, source = FanOut(), Source()
    sockets = []
    for n in range(3):
        socket, outbox = await connection()
        sockets.append(socket)
        for op in ("a", "b"):
            fanout.join(
                key(), Member(f"{op}{n}", outbox, Policy.STRICT, 10), Policy.STRICT, source.produce
            )
    source.emit(1)
    source.emit(2)
    for n, socket in enumerate(sockets):
        frames = await socket.wait_for(4)
        assert payloads(frames, f"a{n}") == payloads(frames, f"b{n}") == [1, 2]
    assert source.runs == 1
    assert fanout.execution_count == 1 and fanout.member_count == 6
    await fanout.close()


async def test_other_tenants_get_their_own_execution(connection):
    fanout, acme, globex = FanOut(), Source(), Source()
    socket, outbox = await connection()
    fanout.join(key("acme"), Member("1", outbox, Policy.STRICT, 10), Policy.STRICT, acme.produce)
    fanout.join(
        key("globex"), Member("2", outbox, Policy.STRICT, 10), Policy.STRICT, globex.produce
    )
    globex.emit("g")
    assert payloads(await socket.wait_for(1), "2") == ["g"]
    assert (acme.runs, globex.runs, fanout.execution_count) == (1, 1, 2)
    await fanout.close()


async def test_a_slow_snapshot_subscriber_gets_the_latest_state_not_a_backlog(connection):
    fanout, source = FanOut(), Source()
    slow, slow_outbox = await connection()
    fast, fast_outbox = await connection()
    slow.open.clear()
    fanout.join(
        key(), Member("slow", slow_outbox, Policy.COALESCE, 100), Policy.COALESCE, source.produce
    )
    fanout.join(
        key(), Member("fast", fast_outbox, Policy.COALESCE, 100), Policy.COALESCE, source.produce
    )
    for n in range(1, 6):  # at the pace of the fast subscriber
        source.emit(n)
        await fast.wait_for(n)
    assert payloads(fast.frames, "fast") == [1, 2, 3, 4, 5]
    slow.open.set()
    frames = await slow.wait_for(2)
    assert payloads(frames, "slow") == [1, 5], "the one in flight, then only the latest"
    await fanout.close()


async def test_a_slow_events_subscriber_is_dropped_with_an_error_and_the_rest_carry_on(connection):
    fanout, source = FanOut(), Source()
    slow, slow_outbox = await connection()
    fast, fast_outbox = await connection()
    slow.open.clear()
    laggard = Member("slow", slow_outbox, Policy.STRICT, 2)
    fanout.join(key(), laggard, Policy.STRICT, source.produce)
    fanout.join(key(), Member("fast", fast_outbox, Policy.STRICT, 2), Policy.STRICT, source.produce)
    for n in range(1, 6):  # at the pace of the fast subscriber
        source.emit(n)
        await fast.wait_for(n)
    assert payloads(fast.frames, "fast") == [1, 2, 3, 4, 5]
    slow.open.set()
    await laggard.finished
    frames = await slow.wait_for(2)
    assert payloads(frames, "slow") == [1]  # in flight when it fell behind
    assert frames[-1]["type"] == "error"
    assert frames[-1]["payload"][0]["extensions"]["code"] == "SLOW_CONSUMER"
    assert fanout.member_count == 1
    await fanout.close()


async def test_an_events_execution_takes_no_member_once_it_has_emitted(connection):
    fanout, first_source, second_source = FanOut(), Source(), Source()
    socket, outbox = await connection()
    first = fanout.join(
        key(), Member("1", outbox, Policy.STRICT, 10), Policy.STRICT, first_source.produce
    )
    first_source.emit(1)
    await socket.wait_for(1)
    second = fanout.join(
        key(), Member("2", outbox, Policy.STRICT, 10), Policy.STRICT, second_source.produce
    )
    assert second is not first, "a late member would have missed the first result"
    second_source.emit(2)
    frames = await socket.wait_for(2)
    assert (payloads(frames, "1"), payloads(frames, "2")) == ([1], [2])
    await fanout.close()


async def test_a_late_snapshot_subscriber_gets_the_latest_state_at_once(connection):
    fanout, source = FanOut(), Source()
    socket, outbox = await connection()
    first = fanout.join(
        key(), Member("1", outbox, Policy.COALESCE, 1), Policy.COALESCE, source.produce
    )
    source.emit("v1")
    await socket.wait_for(1)
    source.emit("v2")
    await socket.wait_for(2)
    late = fanout.join(
        key(), Member("late", outbox, Policy.COALESCE, 1), Policy.COALESCE, source.produce
    )
    assert late is first
    assert payloads(await socket.wait_for(3), "late") == ["v2"]
    await fanout.close()


async def test_when_the_last_member_leaves_the_execution_stops(connection):
    fanout, source = FanOut(), Source()
    socket, outbox = await connection()
    member = Member("1", outbox, Policy.STRICT, 10)
    execution = fanout.join(key(), member, Policy.STRICT, source.produce)
    source.emit(1)
    await socket.wait_for(1)  # the producer is running
    execution.leave(member)
    await source.closed.wait()
    assert fanout.execution_count == 0


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (ExecutionFailed(error_list("bad query", "BAD_INPUT")), "BAD_INPUT"),
        (RuntimeError("bug"), "INTERNAL"),
    ],
)
async def test_an_execution_that_fails_ends_every_member_with_an_error(failure, code, connection):
    fanout, source = FanOut(), Source()
    socket, outbox = await connection()
    members = [Member(str(n), outbox, Policy.STRICT, 10) for n in range(2)]
    for member in members:
        fanout.join(key(), member, Policy.STRICT, source.produce)
    source.emit(failure)
    for member in members:
        await member.finished
    frames = await socket.wait_for(2)
    assert [f["type"] for f in frames] == ["error", "error"]
    assert {f["payload"][0]["extensions"]["code"] for f in frames} == {code}
    assert fanout.execution_count == 0


async def test_an_execution_that_ends_completes_every_member(connection):
    fanout, source = FanOut(), Source()
    socket, outbox = await connection()
    member = Member("1", outbox, Policy.STRICT, 10)
    ended: list[str] = []
    member.on_end = lambda: ended.append("1")
    fanout.join(key(), member, Policy.STRICT, source.produce)
    source.emit(END)
    await member.finished
    assert (await socket.wait_for(1))[-1] == {"id": "1", "type": "complete"}
    assert ended == ["1"]
    assert fanout.execution_count == 0
