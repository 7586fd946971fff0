"""Rebuild one projection from position 0 without taking its read model offline.

1. Create shadow tables (``projections.shadow``) and fill them from the start
   of the stream through a consumer of their own, batch by batch, each batch
   committed with the shadow's own checkpoint (``<name>__rebuild``). The live
   tables keep serving queries and the live projector keeps applying to them.
2. Once the shadow is within one batch of the stream's head, swap in one
   transaction: lock the live checkpoint (a running projector finishes its
   batch, then waits), apply the tail the shadow is missing up to the live
   position, drop the live tables and rename the shadows in, set the live
   checkpoint and bump its generation, and hand over the dead letters. Commit.

The running projector notices the new generation at its next batch and starts
a fresh session: rows it remembered belonged to the old tables. If the shadow
ended up ahead of the live checkpoint, the projector simply skips what the
shadow already holds. A rebuild that dies midway leaves only shadow tables
and a stray consumer behind; the next rebuild of that name starts over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import nats
import sqlalchemy as sa
from eventsourcing.persistence import Mapper
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infrastructure.database import write_options
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.setup import JetStreamConfig
from projections import catalog, checkpoints, lease, shadow
from projections.envelope import CommitDecoder
from projections.feed import ConsumerFeed
from projections.runner import ProjectionGroup
from projections.service import DEFAULT_BATCH, DEFAULT_DURABLE

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (position reached, stream head)


@dataclass(frozen=True, slots=True)
class RebuildResult:
    name: str
    position: int  # the checkpoint the rebuilt tables were swapped in at
    applied_in_swap: int  # commits applied while holding the lock (the tail)
    dead_letters: int


class Rebuild:
    """Rebuilds projection ``name``; ``run()`` returns once the new tables serve."""

    def __init__(
        self,
        engine: AsyncEngine,
        nats_url: str,
        config: JetStreamConfig,
        name: str,
        mapper: Mapper[UUID] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH,
        durable: str = DEFAULT_DURABLE,
        progress: Progress | None = None,
    ) -> None:
        if name not in catalog.PROJECTIONS:
            raise KeyError(f"unknown projection {name!r}; known: {', '.join(catalog.PROJECTIONS)}")
        self.engine = engine
        self.nats_url = nats_url
        self.config = config
        self.name = name
        self.mapper = mapper or build_mapper()
        self.batch_size = batch_size
        self.durable = f"{durable}-rebuild-{name}"
        self.progress = progress or (lambda position, head: None)
        self.label = name + shadow.SUFFIX

    async def run(self) -> RebuildResult:
        nc = await nats.connect(self.nats_url, name=f"vigil-rebuild-{self.name}")
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(**write_options(self.engine))
                async with lease.hold(conn, self.durable, wait=False):
                    return await self._rebuild(conn, nc)
        finally:
            await nc.close()

    async def _rebuild(self, conn: AsyncConnection, nc: Client) -> RebuildResult:
        shadows = shadow.shadow_tables(catalog.tables_of(self.name))
        projections = catalog.build(
            [self.name],
            table_map=shadows,
            label_suffix=shadow.SUFFIX,
            dialect=self.engine.dialect.name,
        )
        group = ProjectionGroup(projections, CommitDecoder(self.mapper, self.config.subject_prefix))
        async with conn.begin():
            await shadow.create(conn, shadows)
            await checkpoints.delete(conn, self.label)
            await checkpoints.drop_dead_letters(conn, self.label)
            await checkpoints.ensure(conn, [self.name])
            after = await group.start(conn)
        feed = ConsumerFeed(
            nc,
            self.config,
            self.durable,
            batch_size=self.batch_size,
            idle_timeout=1.0,
            inactive_threshold=3600.0,
        )
        await feed.open(after)
        try:
            position = await self._fill(conn, group, feed)
            result = await self._swap(conn, group, feed, shadows, position)
        except BaseException:
            async with conn.begin():
                await shadow.drop(conn, shadows)
                await checkpoints.delete(conn, self.label)
            raise
        finally:
            await feed.close()
            await feed.delete()
        log.info("rebuilt %s: swapped in at position %d", self.name, result.position)
        return result

    async def _fill(self, conn: AsyncConnection, group: ProjectionGroup, feed: ConsumerFeed) -> int:
        """Fill the shadow tables until within one batch of the head; returns the position."""
        position = 0
        while True:
            delivery = await feed.next()
            if delivery is None:
                return position  # idle: nothing newer in the stream
            prepared = await group.prepare(delivery.commits)
            async with conn.begin():
                await group.write(conn, prepared)
            await feed.ack(delivery)
            position = delivery.commits[-1].position
            self.progress(position, position + delivery.lag)
            if delivery.lag < self.batch_size:
                return position

    async def _swap(
        self,
        conn: AsyncConnection,
        group: ProjectionGroup,
        feed: ConsumerFeed,
        shadows: dict[str, sa.Table],
        position: int,
    ) -> RebuildResult:
        tail = 0
        async with conn.begin():
            live = (await checkpoints.lock(conn, [self.name]))[self.name]
            while position < live.position:
                delivery = await feed.next()
                if delivery is None:
                    raise RuntimeError(
                        f"the stream ends at {position}, before the live checkpoint "
                        f"{live.position} of {self.name}"
                    )
                await group.write(conn, await group.prepare(delivery.commits))
                position = delivery.commits[-1].position
                tail += len(delivery.commits)
            for table in catalog.tables_of(self.name):
                await shadow.swap(conn, table, shadows[table.name])
            position = max(position, live.position)
            await checkpoints.replace(conn, self.name, position)
            await checkpoints.delete(conn, self.label)
            await checkpoints.move_dead_letters(conn, self.label, self.name)
            letters = (await checkpoints.dead_letter_counts(conn)).get(self.name, 0)
        self.progress(position, position)
        return RebuildResult(self.name, position, tail, letters)
