"""What each subscriber holds on the server: a bounded queue of frames, and its policy.

Each subscriber (``Member``) has its own bounded queue, drained by its
connection's single writer (``Outbox``), so a slow socket never stalls the
shared execution or the other subscribers. When a queue is full the member's
policy decides:

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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from read_api.subscriptions.hub import SharedExecution

log = logging.getLogger(__name__)


class Policy(enum.Enum):
    COALESCE = "coalesce"  # keep only the latest pending payload
    STRICT = "strict"  # never skip: overflow drops the subscriber with an error


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
