"""The projector: keeps every live read model up to date from the event stream.

One loop per process, in this order for every batch (invariant 4):

1. fetch a batch from the durable consumer (``projections.feed``);
2. in one transaction: lock the checkpoints, apply the batch to every
   projection, park dead letters, advance the checkpoints; commit;
3. acknowledge the batch; 4. publish change notices; 5. update metrics.

A crash anywhere before 2 commits leaves nothing behind; a crash between the
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
from projections.feed import ConsumerFeed, Delivery
from projections.metrics import ProjectionMetrics
from projections.runner import BatchResult, ProjectionGroup

log = logging.getLogger(__name__)

DEFAULT_DURABLE = "vigil-projector"


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
        batch_size: int = 2000,
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
        self.caught_up = asyncio.Event()  # set whenever the feed runs dry

    async def run(self, stop: asyncio.Event, *, until: int | None = None) -> None:
        """Project until ``stop`` is set, or, given ``until``, every position up to it."""
        nc = await self._connect()
        try:
            while not stop.is_set():
                try:
                    if await self._session(nc, stop, until):
                        return
                except Exception as err:
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
        await self.run(asyncio.Event(), until=head)
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
                group = ProjectionGroup(
                    catalog.build(self.names),
                    CommitDecoder(self.mapper, self.config.subject_prefix),
                )
                async with conn.begin():
                    after = await group.prepare(conn)
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
                await feed.open(after)
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
        while not stop.is_set():
            delivery = await feed.next(stop)
            if delivery is None:
                for label in group.labels:
                    self.metrics.lag.labels(label).set(0)
                self.caught_up.set()
                continue
            self.caught_up.clear()
            result = await self._apply(conn, group, feed, delivery)
            if until is not None and min(result.positions.values()) >= until:
                return True
        return True

    async def _apply(
        self, conn: AsyncConnection, group: ProjectionGroup, feed: ConsumerFeed, delivery: Delivery
    ) -> BatchResult:
        started = time.perf_counter()
        async with conn.begin():
            result = await group.apply(conn, delivery.commits)
        group.committed(result)
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
