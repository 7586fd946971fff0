"""The projector: keeps every live read model up to date from the event stream.

One loop per process, in this order for every batch (invariant 4):

1. fetch a batch from the durable consumer (``projections.feed``);
2. fold it in memory (``ProjectionGroup.prepare``);
3. in one transaction: lock and check the checkpoints, write every
   projection's rows, park dead letters, advance the checkpoints; commit;
4. acknowledge the batch; 5. publish change notices; 6. update metrics.

Steps 3-6 of batch N run while step 2 of batch N+1 computes, so the
database and the Python process work at the same time; batches are still
written strictly one after another, on one connection. A crash anywhere
before a commit leaves nothing of that batch behind; a crash between the
commit and the ack only causes a redelivery, which the checkpoints skip. Any
error ends the session (connection, lease, feed, remembered rows) and a new
one starts from the checkpoints after a short backoff, so the projector heals
from database or NATS restarts by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from uuid import UUID

import nats
from eventsourcing.persistence import Mapper
from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infrastructure.changes import ChangeBus
from infrastructure.database import write_options
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.setup import JetStreamConfig
from projections import catalog, checkpoints, lease
from projections.envelope import CommitDecoder
from projections.feed import ConsumerFeed, Delivery, FeedBroken
from projections.metrics import ProjectionMetrics
from projections.runner import BatchResult, PreparedBatch, ProjectionGroup, StaleBatch

log = logging.getLogger(__name__)

DEFAULT_DURABLE = "vigil-projector"
# Most events per transaction. At the tail batches are as small as what arrived;
# in a catch-up, larger ones fold more events of each aggregate into one row write.
DEFAULT_BATCH = 10_000


class Projector:
    """Runs the live projections (all of them unless ``names`` says otherwise).

    Owns its NATS connection (opened from ``nats_url``) and one database
    connection from ``engine``; never disposes of the engine. ``bus`` gets a
    ``ChangeNotice`` per changed aggregate after every commit.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        nats_url: str,
        config: JetStreamConfig,
        mapper: Mapper[UUID] | None = None,
        *,
        bus: ChangeBus | None = None,
        registry: CollectorRegistry | None = None,
        names: Sequence[str] | None = None,
        durable: str = DEFAULT_DURABLE,
        batch_size: int = DEFAULT_BATCH,
        idle_timeout: float = 2.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.engine = engine
        self.nats_url = nats_url
        self.config = config
        self.mapper = mapper or build_mapper()
        self.bus = bus
        self.metrics = ProjectionMetrics(registry)
        self.names = list(names) if names is not None else list(catalog.PROJECTIONS)
        catalog.build(self.names)  # fail now on an unknown name
        self.durable = durable
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout
        self.retry_delay = retry_delay
        self._feed: ConsumerFeed | None = None
        self._gap_after: int | None = None  # where the last session saw the stream jump
        self.caught_up = asyncio.Event()  # set whenever the feed runs dry

    async def run(
        self, stop: asyncio.Event, *, until: int | None = None, retry: bool = True
    ) -> None:
        """Project until ``stop`` is set, or, given ``until``, every position up to it.

        With ``retry`` (the default) an error restarts the session after a pause,
        forever; without it the error is raised (tools and tests want to know).
        """
        nc = await self._connect()
        try:
            while not stop.is_set():
                try:
                    if await self._session(nc, stop, until):
                        return
                except StaleBatch as err:
                    log.info("projector starts over from the checkpoints: %s", err)
                except FeedBroken as err:
                    # Reopen at once; a jump seen again from the same place is then accepted.
                    self._gap_after = err.gap_after
                    log.warning("projector reopens its feed: %s", err)
                except Exception as err:
                    if not retry:
                        raise
                    self.metrics.restarts.inc()
                    log.warning("projector session ended: %s; restarting", err, exc_info=True)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.retry_delay)
        finally:
            await nc.close()

    async def catch_up(self) -> int:
        """Apply everything in the stream now, then return the position reached."""
        nc = await self._connect()
        try:
            head = (await nc.jetstream().stream_info(self.config.stream)).state.last_seq
        finally:
            await nc.close()
        await self.run(asyncio.Event(), until=head, retry=False)
        return head

    async def _connect(self) -> Client:
        async def disconnected() -> None:
            if self._feed is not None:
                self._feed.broken("disconnected from NATS")

        async def on_error(err: Exception) -> None:
            log.warning("projector nats: %s", err)

        return await nats.connect(
            self.nats_url,
            name="vigil-projector",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            disconnected_cb=disconnected,
            error_cb=on_error,
            pending_size=256 * 1024 * 1024,
        )

    async def _session(self, nc: Client, stop: asyncio.Event, until: int | None) -> bool:
        """One connection, lease and feed; True when there is nothing left to do."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**write_options(self.engine))
            async with lease.hold(conn, self.durable, stop=stop) as held:
                if not held:
                    return True
                projections = catalog.build(self.names, dialect=self.engine.dialect.name)
                group = ProjectionGroup(
                    projections, CommitDecoder(self.mapper, self.config.subject_prefix)
                )
                async with conn.begin():
                    after = await group.start(conn)
                    await self._report_parked(conn)
                if until is not None and after >= until:
                    return True
                feed = ConsumerFeed(
                    nc,
                    self.config,
                    self.durable,
                    batch_size=self.batch_size,
                    idle_timeout=self.idle_timeout,
                )
                await feed.open(after, tolerate_gap=self._gap_after == after)
                self._gap_after = None
                self._feed = feed
                try:
                    return await self._consume(conn, group, feed, stop, until)
                finally:
                    self._feed = None
                    await feed.close()

    async def _consume(
        self,
        conn: AsyncConnection,
        group: ProjectionGroup,
        feed: ConsumerFeed,
        stop: asyncio.Event,
        until: int | None,
    ) -> bool:
        writing: asyncio.Task[BatchResult] | None = None
        try:
            while not stop.is_set():
                delivery = await feed.next(stop)
                if delivery is None:
                    if writing is not None:
                        result, writing = await writing, None
                        if _reached(result, until):
                            return True
                    for label in group.labels:
                        self.metrics.lag.labels(label).set(0)
                    self.caught_up.set()
                    continue
                self.caught_up.clear()
                prepared = await group.prepare(delivery.commits)
                if writing is not None:
                    result, writing = await writing, None
                    if _reached(result, until):
                        return True  # the batch just prepared was never written: no harm
                writing = asyncio.create_task(self._write(conn, group, feed, delivery, prepared))
                if delivery.lag == 0:  # caught up: nothing to prepare meanwhile, finish now
                    result, writing = await writing, None
                    if _reached(result, until):
                        return True
            return True
        finally:
            if writing is not None:
                await writing  # a batch in flight is committed and acked, or its error raised

    async def _write(
        self,
        conn: AsyncConnection,
        group: ProjectionGroup,
        feed: ConsumerFeed,
        delivery: Delivery,
        prepared: PreparedBatch,
    ) -> BatchResult:
        started = time.perf_counter()
        async with conn.begin():
            result = await group.write(conn, prepared)
        await feed.ack(delivery)
        if self.bus is not None:
            try:
                await self.bus.publish(group.notices(result))
            except Exception:  # notices are best effort; the rows are committed
                log.warning("publishing change notices failed", exc_info=True)
        self._record(group, result, delivery, time.perf_counter() - started)
        return result

    def _record(
        self, group: ProjectionGroup, result: BatchResult, delivery: Delivery, seconds: float
    ) -> None:
        metrics = self.metrics
        metrics.batch_seconds.observe(seconds)
        head = result.last_position + delivery.lag
        for label in group.labels:
            outcome = result.outcomes[label]
            position = result.positions[label]
            metrics.position.labels(label).set(position)
            metrics.lag.labels(label).set(max(0, head - position))
            metrics.events.labels(label).inc(outcome.applied)
            if outcome.dead_letters:
                metrics.dead_letters.labels(label).inc(len(outcome.dead_letters))
                metrics.parked.labels(label).inc(len(outcome.dead_letters))

    async def _report_parked(self, conn: AsyncConnection) -> None:
        counts = await checkpoints.dead_letter_counts(conn)
        for name in self.names:
            self.metrics.parked.labels(name).set(counts.get(name, 0))


def _reached(result: BatchResult, until: int | None) -> bool:
    return until is not None and min(result.positions.values()) >= until
