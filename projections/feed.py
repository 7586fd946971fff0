"""Commits from a durable JetStream pull consumer, in stream order, in batches.

**Where it starts.** The read-model database, not the consumer, knows what was
applied: ``open(after)`` realigns the durable consumer with the checkpoint.
A consumer left exactly there (clean shutdown: everything delivered was
acknowledged) is reused; any other (a crash left deliveries unacknowledged, or
the database was restored or rebuilt) is recreated to start at ``after + 1``.

**Order and gaps.** The consumer has no subject filter, so it delivers every
stream sequence; the event store never deletes messages, so sequences arrive
contiguous. A message at or below the last one seen (a redelivery) is
dropped; a jump past the next sequence means a delivery was lost (a dropped
connection, a pull request of a dead process) and raises ``FeedBroken``, as
does a disconnect: the projector then reopens from its checkpoint rather than
acknowledge past a hole. Only when the same jump shows up again right after
reopening at the same place is it taken for what it then is: messages an
operator deleted from the stream (the caller passes ``tolerate_gap``).

**Flow.** Pull requests ask for a few thousand messages each, topped up as
they are used, so that two batches are on their way or buffered while one is
folded and written, but never more than ``_AHEAD`` messages are asked for and
not yet read: the server queues everything asked for on the connection and
closes it (a "slow consumer") past its ``max_pending``, 64 MB by default,
which two 100,000-message batches would exceed while the projector is busy.

**Acknowledgement.** ``AckPolicy.ALL``: acknowledging the last message of a
committed batch acknowledges the batch, one publish per transaction.

**Speed.** nats-py builds a ``Msg``, parses headers and schedules a task
hop per message for ``fetch``, about 4x the whole budget of a projector that
must apply 50,000 events/s. The feed instead takes messages for its inbox
straight from the client's read buffer (``infrastructure.rawinbox``): subject,
reply and body, nothing else. That reaches into two private parts of nats-py,
pinned to 2.16 in pyproject; every projection test runs through them against
a real server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.rawinbox import RawInbox
from projections.envelope import RawCommit

_PULL_CHUNK = 10_000  # most messages one pull request asks for
_AHEAD = 40_000  # most messages asked for and not yet received (~15 MB here)
_SUBJECTS_MAX = 200_000


class FeedBroken(Exception):
    """Deliveries can no longer be trusted to be complete; reopen from the checkpoint.

    ``gap_after`` is set when the break was a jump in sequence right after that
    position: reopening there with ``tolerate_gap=True`` accepts the jump once.
    """

    def __init__(self, reason: str, gap_after: int | None = None) -> None:
        super().__init__(reason)
        self.gap_after = gap_after


@dataclass(frozen=True, slots=True)
class Delivery:
    """A batch of commits; ``lag`` is how many stream messages follow its last one."""

    commits: list[RawCommit]
    ack_subject: str
    lag: int


def _sequence_and_pending(reply: bytes) -> tuple[int, int]:
    """Stream sequence and pending count from a JetStream ack subject (v1 or v2 form)."""
    tokens = reply.split(b".")
    count = len(tokens)
    if count == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[8])
    if count >= 12:  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>...
        return int(tokens[7]), int(tokens[10])
    raise FeedBroken(f"unexpected JetStream ack subject {reply!r}")


class ConsumerFeed:
    """Batches of commits from the durable consumer ``durable`` on ``config.stream``."""

    def __init__(
        self,
        nc: Client,
        config: JetStreamConfig,
        durable: str,
        *,
        batch_size: int = 2000,
        idle_timeout: float = 2.0,
        max_fill_wait: float = 0.05,
        ack_wait: float = 300.0,
        inactive_threshold: float | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._config = config
        self.durable = durable
        self.batch_size = batch_size
        self._idle_timeout = idle_timeout
        self._max_fill_wait = max_fill_wait
        self._ack_wait = ack_wait
        self._inactive_threshold = inactive_threshold
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{config.stream}.{durable}"
        self._inbox = RawInbox(nc, self._receive)
        self._buffer: collections.deque[tuple[RawCommit, bytes, int]] = collections.deque()
        self._subjects: dict[bytes, str] = {}
        self._requests: collections.deque[int] = collections.deque()  # credits left, oldest first
        self._wake = asyncio.Event()
        self._topping: asyncio.Task[None] | None = None
        self._broken: BaseException | None = None
        self._last = 0
        self._tolerate_gap = False
        self._lag = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self, after: int, *, tolerate_gap: bool = False) -> None:
        """Start delivering from ``after + 1``, realigning the durable consumer if needed.

        ``tolerate_gap`` accepts a first message beyond ``after + 1``: the caller
        saw the same jump from the same place before, so the stream lacks them.
        """
        await self._realign(after)
        self._last, self._broken = after, None
        self._tolerate_gap = tolerate_gap
        self._buffer.clear()
        self._requests.clear()
        await self._inbox.open()

    async def close(self) -> None:
        if self._topping is not None:
            self._topping.cancel()
            self._topping = None
        await self._inbox.close()
        self._buffer.clear()
        self._requests.clear()

    async def delete(self) -> None:
        """Remove the durable consumer (a finished rebuild's)."""
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self._config.stream, self.durable)

    def broken(self, reason: str) -> None:
        """Declare the deliveries incomplete (the connection dropped, say)."""
        self._broken = FeedBroken(reason)
        self._wake.set()

    # -- batches -----------------------------------------------------------------------

    async def next(self, stop: asyncio.Event | None = None) -> Delivery | None:
        """The next batch; None after ``idle_timeout`` without a message, or once ``stop`` is set.

        Raises ``FeedBroken`` once the messages received before the break are handed out.
        """
        loop = asyncio.get_running_loop()
        idle_deadline = loop.time() + self._idle_timeout
        fill_deadline: float | None = None
        while True:
            if self._broken is not None:
                if not self._buffer:
                    raise self._broken
                break  # what arrived before the break is contiguous: hand it out first
            await self._top_up()
            buffered = len(self._buffer)
            if buffered >= self.batch_size:
                break
            now = loop.time()
            if buffered:
                if self._buffer[-1][2] == 0:
                    break  # the stream has nothing more for us: no reason to wait
                # More is on its way (catching up): wait for a full batch, but not forever.
                if fill_deadline is None:
                    fill_deadline = now + self._max_fill_wait
                if now >= fill_deadline:
                    break
                timeout = fill_deadline - now
            else:
                if (stop is not None and stop.is_set()) or now >= idle_deadline:
                    return None
                timeout = idle_deadline - now
            self._wake.clear()
            await _wait(self._wake, stop, timeout)
        count = min(self.batch_size, len(self._buffer))
        popped = [self._buffer.popleft() for _ in range(count)]
        _, reply, pending = popped[-1]
        if self._buffer:  # the newest delivery knows best what is still pending
            pending = self._buffer[-1][2] + len(self._buffer)
        self._lag = pending
        return Delivery([commit for commit, _, _ in popped], reply.decode(), self._lag)

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery`` and everything before it (call after the commit)."""
        await self._nc.publish(delivery.ack_subject, b"+ACK")

    @property
    def lag(self) -> int:
        """Messages after the last one handed out: delivered and buffered, or still pending."""
        return self._lag

    # -- internals ---------------------------------------------------------------------

    def _receive(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if not reply:
            self._status(headers or b"")
            return
        requests = self._requests
        if requests:
            requests[0] -= 1
            if requests[0] <= 0:
                requests.popleft()
                self._top_up_soon()
        try:
            seq, pending = _sequence_and_pending(reply)
        except FeedBroken as err:
            self._broken = err
            self._wake.set()
            return
        if seq <= self._last:
            return  # a redelivery of something already handed out
        if seq != self._last + 1 and not self._tolerate_gap:
            reason = f"delivery jumped from {self._last} to {seq}: a message went missing"
            self._broken = FeedBroken(reason, gap_after=self._last)
            self._wake.set()
            return
        self._last = seq
        self._tolerate_gap = False
        # One string per subject, not one per message: less to decode and to keep,
        # and the decoder's lookups by subject then match by identity.
        name = self._subjects.get(subject)
        if name is None:
            if len(self._subjects) >= _SUBJECTS_MAX:
                self._subjects.clear()  # a bound, not an LRU
            name = self._subjects[subject] = subject.decode()
        buffer = self._buffer
        buffer.append((RawCommit(name, seq, data), reply, pending))
        # Wake the reader only when it has something to decide: no wake-up per message.
        if len(buffer) >= self.batch_size or pending == 0 or len(buffer) == 1:
            self._wake.set()

    def _status(self, headers: bytes) -> None:
        code = headers[9:12]
        if code in (b"408", b"404"):  # the oldest pull request expired (or found nothing)
            if self._requests:
                self._requests.popleft()
                self._top_up_soon()
        elif code == b"100":
            return  # heartbeat
        else:  # 409: consumer deleted, leadership change, max waiting...
            self.broken(f"pull request ended with {headers.decode(errors='replace').strip()}")
        self._wake.set()

    async def _top_up(self) -> None:
        """Keep two batches buffered or requested, at most ``_AHEAD`` of them requested."""
        chunk = min(self.batch_size, _PULL_CHUNK)
        ahead = max(chunk, min(_AHEAD, 2 * self.batch_size))
        expires = int(self._idle_timeout * 4 * 1e9)
        payload = json.dumps({"batch": chunk, "expires": expires}).encode()
        while True:
            requested = sum(self._requests)
            room = min(2 * self.batch_size - len(self._buffer), ahead) - requested
            if room < chunk:
                return
            await self._nc.publish(self._next_subject, payload, reply=self._inbox.subject)
            self._requests.append(chunk)

    def _top_up_soon(self) -> None:
        """Ask for more from the receive path, which cannot wait for a publish."""
        if self._topping is None or self._topping.done():
            self._topping = asyncio.get_running_loop().create_task(self._top_up_quietly())

    async def _top_up_quietly(self) -> None:
        try:
            await self._top_up()
        except Exception as err:  # the connection is going: the reader must start over
            self.broken(f"requesting more messages failed: {err}")

    async def _realign(self, after: int) -> None:
        stream = self._config.stream
        try:
            info: Any = await self._js.consumer_info(stream, self.durable)
        except NotFoundError:
            info = None
        if info is not None and _resumes_after(info, after):
            return
        if info is not None:
            await self._js.delete_consumer(stream, self.durable)
        await self._js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=self.durable,
                description="Vigil projector: read models in PostgreSQL or SQLite",
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                ack_policy=AckPolicy.ALL,
                ack_wait=self._ack_wait,
                max_ack_pending=4 * self.batch_size,
                max_waiting=64,
                inactive_threshold=self._inactive_threshold,
            ),
        )


def _resumes_after(info: Any, after: int) -> bool:
    """True when the consumer would deliver ``after + 1`` next, with nothing outstanding."""
    config = info.config
    return (
        config.ack_policy == AckPolicy.ALL
        and not config.filter_subject
        and not config.filter_subjects
        and info.num_ack_pending == 0
        and info.delivered.stream_seq == after
        and info.ack_floor.stream_seq == after
    )


async def _wait(event: asyncio.Event, stop: asyncio.Event | None, seconds: float) -> None:
    waiters = [asyncio.ensure_future(event.wait())]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
