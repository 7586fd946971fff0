"""The fan-out hub: one shared execution per subscription key, one bounded queue per subscriber.

A *key* is (tenant, role, query, operation name, variables): subscribers with
the same key would compute byte-identical results, so the hub runs the GraphQL
execution for a key once per source event, encodes the result once, and hands
the encoded payload to every subscriber of the key. Role is in the key because
two roles may one day see different fields; it costs at most one execution per
role.

Each subscriber (``Member``) has its own bounded queue of frames, drained by
its connection's single writer (``Outbox``), so a slow socket never stalls the
execution or the other subscribers. When a queue is full the member's policy
decides:

* ``Policy.COALESCE`` (deviceUpdated, fleetUpdated: state snapshots): the
  pending snapshot is replaced by the newer one; a slow client sees the latest
  state, never a stale backlog.
* ``Policy.STRICT`` (events: a log that must never skip): the subscriber is
  dropped with a ``SLOW_CONSUMER`` error; the client resubscribes with
  ``after:`` set to the last position it received and misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import orjson

log = logging.getLogger(__name__)


class Policy(enum.Enum):
    COALESCE = "coalesce"  # keep only the latest pending payload
    STRICT = "strict"  # never skip: overflow drops the subscriber with an error


@dataclass(frozen=True, slots=True)
class SubscriptionKey:
    tenant: str
    role: str
    query: str
    operation_name: str | None
    variables: str  # canonical JSON

    @classmethod
    def of(
        cls,
        tenant: str,
        role: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> SubscriptionKey:
        canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
        return cls(tenant, role, query, operation_name, canonical)


class ExecutionFailed(Exception):
    """The shared execution ended with GraphQL errors (already a JSON list)."""

    def __init__(self, errors_json: str) -> None:
        super().__init__(errors_json)
        self.errors_json = errors_json


def error_payload(message: str, code: str, **extensions: object) -> list[dict[str, object]]:
    """A graphql-transport-ws ``error`` payload: a list of GraphQL errors."""
    return [{"message": message, "extensions": {"code": code, **extensions}}]


def error_list(message: str, code: str, **extensions: object) -> str:
    """``error_payload`` encoded as JSON."""
    return orjson.dumps(error_payload(message, code, **extensions)).decode()


class Outbox:
    """The one writer of a websocket connection: frames of all its subscriptions, in order."""

    def __init__(self, send: Callable[[str], Awaitable[None]]) -> None:
        self._send = send
        self._ready: deque[Member] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="subscription-outbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def schedule(self, member: Member) -> None:
        if not member.scheduled:
            member.scheduled = True
            self._ready.append(member)
            self._wake.set()

    async def _run(self) -> None:
        ready, send = self._ready, self._send
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while ready:
                    member = ready.popleft()
                    member.scheduled = False
                    frames = member.frames
                    while frames:
                        await send(frames.popleft())
                    if member.ending:
                        member.settle()
        except Exception as err:  # the socket is gone: nobody can be served any more
            log.debug("subscription outbox stopped: %s", err)
            for member in ready:
                member.settle()


class Member:
    """One subscriber: an operation id on a connection, with its bounded queue."""

    __slots__ = (
        "capacity",
        "ending",
        "execution",
        "finished",
        "frames",
        "id_json",
        "on_end",
        "outbox",
        "policy",
        "scheduled",
    )

    def __init__(self, op_id: str, outbox: Outbox, policy: Policy, capacity: int) -> None:
        self.id_json = orjson.dumps(op_id).decode()
        self.outbox = outbox
        self.policy = policy
        self.capacity = capacity if policy is Policy.STRICT else 1
        self.frames: deque[str] = deque()
        self.scheduled = False
        self.ending = False  # a terminal frame is queued: nothing more is accepted
        self.execution: SharedExecution | None = None
        self.on_end: Callable[[], None] | None = None  # runs before the terminal frame is queued
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def push(self, payload_json: str) -> None:
        """Queue a ``next`` frame carrying an already encoded result payload."""
        if self.ending:
            return
        frame = '{"id":' + self.id_json + ',"type":"next","payload":' + payload_json + "}"
        if len(self.frames) >= self.capacity:
            if self.policy is Policy.COALESCE:
                self.frames.clear()  # only the newest snapshot matters
            else:
                self.fail(
                    error_list(
                        f"subscriber too slow: {self.capacity} results queued; resubscribe "
                        "with after: the last position you received",
                        "SLOW_CONSUMER",
                    ),
                    drop_pending=True,
                )
                return
        self.frames.append(frame)
        self.outbox.schedule(self)

    def complete(self) -> None:
        self._end('{"id":' + self.id_json + ',"type":"complete"}')

    def fail(self, errors_json: str, *, drop_pending: bool = False) -> None:
        if drop_pending:
            self.frames.clear()
        self._end('{"id":' + self.id_json + ',"type":"error","payload":' + errors_json + "}")

    def _end(self, frame: str) -> None:
        if self.ending:
            return
        self.ending = True
        if self.on_end is not None:
            self.on_end()
        self.frames.append(frame)
        if self.execution is not None:
            self.execution.leave(self)
        self.outbox.schedule(self)

    def cancel(self) -> None:
        """Stop at once, with no terminal frame (the client asked, or is gone)."""
        self.ending = True
        self.frames.clear()
        if self.execution is not None:
            self.execution.leave(self)

    def settle(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


Producer = Callable[[], AsyncGenerator[str, None]]


class SharedExecution:
    """One GraphQL execution whose encoded results go to every member of its key."""

    def __init__(self, fanout: FanOut, key: SubscriptionKey, policy: Policy) -> None:
        self.fanout = fanout
        self.key = key
        self.policy = policy
        self.members: dict[Member, None] = {}  # insertion-ordered set
        self.emitted = 0
        self.latest: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def joinable(self) -> bool:
        # A snapshot stream can take members at any time (they get the latest
        # snapshot at once); a log stream only until it has emitted, so every
        # member sees the same complete sequence from its ``after`` position.
        return not self.closed and (self.policy is Policy.COALESCE or self.emitted == 0)

    def join(self, member: Member) -> None:
        member.execution = self
        self.members[member] = None
        if self.latest is not None:
            member.push(self.latest)

    def leave(self, member: Member) -> None:
        self.members.pop(member, None)
        member.execution = None
        if not self.members and not self.closed:
            self.close()

    def close(self) -> None:
        self.closed = True
        self.fanout._forget(self)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def run(self, produce: Producer) -> None:
        try:
            async with contextlib.aclosing(produce()) as results:
                async for payload in results:
                    self.emitted += 1
                    if self.policy is Policy.COALESCE:
                        self.latest = payload
                    for member in list(self.members):
                        member.push(payload)
            ending: Callable[[Member], None] = Member.complete
        except ExecutionFailed as err:
            errors = err.errors_json
            ending = lambda member: member.fail(errors)  # noqa: E731
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("subscription execution failed: %s", self.key.query[:200])
            errors = error_list("subscription failed on the server", "INTERNAL")
            ending = lambda member: member.fail(errors)  # noqa: E731
        finally:
            if not self.closed:
                self.close()
        for member in list(self.members):
            ending(member)


class FanOut:
    """Registry of shared executions, keyed by ``SubscriptionKey``."""

    def __init__(self) -> None:
        self._executions: dict[SubscriptionKey, SharedExecution] = {}
        self.executions_started = 0

    def join(
        self, key: SubscriptionKey, member: Member, policy: Policy, produce: Producer
    ) -> SharedExecution:
        """Attach ``member`` to the execution for ``key``, starting one if none can take it."""
        execution = self._executions.get(key)
        if execution is None or not execution.joinable:
            execution = SharedExecution(self, key, policy)
            self._executions[key] = execution
            self.executions_started += 1
            execution.join(member)
            execution.task = asyncio.create_task(execution.run(produce), name="subscription")
        else:
            execution.join(member)
        return execution

    def _forget(self, execution: SharedExecution) -> None:
        if self._executions.get(execution.key) is execution:
            del self._executions[execution.key]

    @property
    def execution_count(self) -> int:
        return len(self._executions)

    @property
    def member_count(self) -> int:
        return sum(len(e.members) for e in self._executions.values())

    async def close(self) -> None:
        executions = list(self._executions.values())
        for execution in executions:
            execution.close()
        for execution in executions:
            if execution.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await execution.task
