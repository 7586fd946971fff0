"""The live event feed: one JetStream ordered consumer per API process, while it is wanted.

It follows the whole stream, every tenant's commits, so it runs only while
some ``events`` subscription needs it: the first one starts it (``acquire``,
before it looks at the live position), and it stops ``idle`` seconds after
the last one left (``release``), instead of decoding the stream for nobody
(at thousands of commits a second that was a fifth of an API process).

It starts just after the head it sees when started and hands every commit to
``LiveEvents.dispatch`` in position order. nats-py's ordered consumer already
recreates itself after a gap or a reconnect; should the subscription itself
end (the connection closed and reopened), the feed resumes from the position
after the last one it dispatched, so live subscriptions see no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from infrastructure.eventstore.jetstream import (
    JetStreamEventStore,
    decode_events,
    recorded_commit,
)
from infrastructure.eventstore.port import RecordedCommit, StoreUnavailable
from read_api.subscriptions.events import EventFilter, LiveEvents

log = logging.getLogger(__name__)


def decode_commit(store: JetStreamEventStore, msg: Msg) -> RecordedCommit:
    """A stream message as the store's own ``read_all`` would return it."""
    ref = store.ref_of(msg.subject)
    return recorded_commit(
        ref, msg.metadata.sequence.stream, msg.headers or {}, decode_events(msg.data)
    )


def filter_subject(prefix: str, flt: EventFilter) -> str:
    """The stream subjects holding the commits ``flt`` wants (see ``aggregate_subject``)."""
    kind = flt.aggregate_type or "*"
    ident = flt.aggregate_id.hex if flt.aggregate_id is not None else "*"
    return f"{prefix}.{flt.tenant}.{kind}.{ident}"


class JetStreamReplay:
    """Replays only the subjects a filter names, with a short-lived ordered consumer.

    A filtered subscription on a stream holding every tenant then reads its own
    commits, not the whole log. It ends once the consumer has nothing pending,
    which covers every matching commit up to the head when it was created.
    """

    def __init__(
        self,
        js: JetStreamContext,
        store: JetStreamEventStore,
        *,
        timeout: float = 5.0,
        concurrency: int = 16,
    ) -> None:
        self._js = js
        self._store = store
        self._timeout = timeout
        # A crowd replaying at once must not flood JetStream's API with consumer creations.
        self._gate = asyncio.Semaphore(concurrency)

    async def __call__(self, flt: EventFilter, start: int) -> AsyncGenerator[RecordedCommit, None]:
        config = self._store.config
        async with self._gate:
            try:
                sub = await self._js.subscribe(
                    filter_subject(config.subject_prefix, flt),
                    stream=config.stream,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    config=ConsumerConfig(opt_start_seq=max(start, 1)),
                )
            except nats.errors.Error as err:
                raise StoreUnavailable(f"cannot replay {config.stream}: {err}") from err
        consumer = None
        try:
            async with self._gate:
                info = await sub.consumer_info()
            consumer = info.name
            if info.num_pending == 0 and not (info.delivered and info.delivered.consumer_seq):
                return  # nothing matches after ``start``
            while True:
                try:
                    msg = await sub.next_msg(timeout=self._timeout)
                except nats.errors.Error as err:
                    raise StoreUnavailable(f"replaying {config.stream}: {err}") from err
                yield decode_commit(self._store, msg)
                if msg.metadata.num_pending == 0:
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
            # The server would keep the consumer until its inactivity threshold: a crowd
            # replaying at once would run into the stream's consumer limit.
            if consumer is not None:
                with contextlib.suppress(nats.errors.Error):
                    async with self._gate:
                        await self._js.delete_consumer(config.stream, consumer)


class JetStreamLiveFeed:
    def __init__(
        self,
        js: JetStreamContext,
        store: JetStreamEventStore,
        live: LiveEvents,
        *,
        retry_delay: float = 1.0,
        idle: float = 30.0,
    ) -> None:
        self._js = js
        self._store = store
        self._live = live
        self._retry_delay = retry_delay
        self._idle = idle
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self._switch = asyncio.Lock()  # starting and stopping, one at a time
        self._idle_stop: asyncio.TimerHandle | None = None
        self._starting: asyncio.Future[None] | None = None
        self.commits_seen = 0
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._task is not None

    async def acquire(self) -> None:
        """A subscription needs the feed: returns once it runs.

        Subscriptions arriving while it starts all wait on the one start and
        wake together, before the feed can dispatch anything new.
        """
        self._users += 1
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        if self._task is not None and not self._switch.locked():
            return  # running, and not being stopped
        try:
            if self._starting is None or self._starting.done():
                self._starting = asyncio.ensure_future(self._ensure_running())
            await asyncio.shield(self._starting)
        except BaseException:
            self.release()
            raise

    async def _ensure_running(self) -> None:
        async with self._switch:
            if self._task is None:
                await self.start()

    def release(self) -> None:
        """A subscription is done with the feed; the last one out stops it after ``idle``."""
        self._users -= 1
        if self._users == 0 and self._task is not None and self._idle_stop is None:
            loop = asyncio.get_running_loop()
            self._idle_stop = loop.call_later(self._idle, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle_stop = None
        if self._users == 0:
            asyncio.get_running_loop().create_task(self._stop_unused(), name="live-feed-stop")

    async def _stop_unused(self) -> None:
        async with self._switch:
            if self._users == 0:
                await self.stop()

    async def start(self) -> None:
        """Begin after the current head; returns once the consumer exists."""
        self.starts += 1
        self._live.position = await self._store.head_position()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(ready), name="live-event-feed")
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            task, self._task = self._task, None
            await task  # raises what stopped it

    async def stop(self) -> None:
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, ready: asyncio.Future[None]) -> None:
        while True:
            try:
                await self._follow(ready)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not ready.done():
                    raise
                log.warning("live event feed lost (%s); resuming in %ss", err, self._retry_delay)
                await asyncio.sleep(self._retry_delay)

    async def _follow(self, ready: asyncio.Future[None]) -> None:
        config = self._store.config
        sub = await self._js.subscribe(
            config.subjects,
            stream=config.stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=self._live.position + 1),
        )
        if not ready.done():
            ready.set_result(None)
        try:
            async for msg in sub.messages:
                commit = decode_commit(self._store, msg)
                if commit.position <= self._live.position:
                    continue  # redelivered around a reset
                self.commits_seen += 1
                self._live.dispatch(commit)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
