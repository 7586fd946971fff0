"""The subscription hub of one API process, and the factory the composition root calls."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.changes import ChangeBus
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import EventStore
from read_api.subscriptions.events import LiveEvents
from read_api.subscriptions.feed import JetStreamLiveFeed, JetStreamReplay
from read_api.subscriptions.hub import FanOut
from read_api.subscriptions.limits import SubscriptionLimits
from read_api.subscriptions.notices import NoticeRouter
from read_api.subscriptions.readmodel import SnapshotReader


class SubscriptionHub:
    """Everything subscriptions share in one process: sources, fan-out and limits.

    ``start()`` once listening and following is in place (from the app's
    lifespan), ``stop()`` on the way out.
    """

    def __init__(
        self,
        *,
        notices: NoticeRouter,
        events: LiveEvents,
        feed: JetStreamLiveFeed | None,
        snapshots: SnapshotReader | None,
        limits: SubscriptionLimits,
        share_executions: bool = True,
    ) -> None:
        self.fanout = FanOut()
        # False runs one execution per subscriber, as plain strawberry does (the
        # benchmark's peer); nothing else should turn it off.
        self.share_executions = share_executions
        self.notices = notices
        self.events = events
        self.feed = feed
        self.snapshots = snapshots
        self.limits = limits

    async def start(self) -> None:
        await self.notices.start()  # the live event feed starts with its first subscriber

    async def stop(self) -> None:
        await self.fanout.close()
        if self.feed is not None:
            await self.feed.stop()
        await self.notices.stop()

    def require_snapshots(self) -> SnapshotReader:
        if self.snapshots is None:
            raise RuntimeError("this hub was built without a read-model engine")
        return self.snapshots

    def stats(self) -> dict[str, Any]:
        return {
            "executions": self.fanout.execution_count,
            "executions_started": self.fanout.executions_started,
            "subscribers": self.fanout.member_count,
            "aggregate_watches": self.notices.watch_count,
            "event_watches": self.events.watch_count,
            "live_position": self.events.position,
            "snapshot_reads": self.snapshots.reads if self.snapshots else 0,
        }


def build_hub(
    store: EventStore,
    mapper: Mapper[UUID],
    bus: ChangeBus,
    *,
    nc: Client | None = None,
    engine: AsyncEngine | None = None,
    limits: SubscriptionLimits | None = None,
    share_executions: bool = True,
    bus_retry_delay: float = 1.0,
    live_idle: float = 30.0,
) -> SubscriptionHub:
    """Wire a hub: ``bus`` feeds deviceUpdated/fleetUpdated, ``store`` and ``nc`` feed events.

    With a ``JetStreamEventStore`` and its client ``nc`` the hub follows the
    stream with one ordered consumer while ``events`` subscriptions need it
    (until ``live_idle`` seconds after the last one); without them (unit
    tests, tools) live commits reach it only through ``hub.events.dispatch``.
    """
    limits = limits or SubscriptionLimits()
    feed = None
    if isinstance(store, JetStreamEventStore) and nc is not None:
        js = nc.jetstream()
        events = LiveEvents(
            store, mapper, queue_size=limits.live_backlog, replay=JetStreamReplay(js, store)
        )
        feed = JetStreamLiveFeed(js, store, events, idle=live_idle)
        events.demand = feed
    else:
        events = LiveEvents(store, mapper, queue_size=limits.live_backlog)
    return SubscriptionHub(
        notices=NoticeRouter(bus, retry_delay=bus_retry_delay),
        events=events,
        feed=feed,
        snapshots=SnapshotReader(engine) if engine is not None else None,
        limits=limits,
        share_executions=share_executions,
    )
