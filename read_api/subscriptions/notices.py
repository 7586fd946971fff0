"""Change notices routed to the subscriptions watching one aggregate.

One listener per API process reads the ``ChangeBus`` (in-process when
embedded, Redis with several API processes) and wakes the watches of the
aggregate each notice names. A watch coalesces: however many notices arrive
while its subscription is busy, it wakes once and the subscription re-reads
the read model, which the projector committed before it published.

If the bus connection drops, notices published meanwhile are lost (the bus is
best effort), so on reconnecting every watch is woken once to re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

from infrastructure.changes import ChangeBus, ChangeNotice

log = logging.getLogger(__name__)

WatchKey = tuple[str, str, str, UUID]  # projection, tenant, aggregate type, aggregate id


class AggregateWatch:
    """Wakes when the read model of one aggregate may have changed."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.notices = 0

    def notify(self) -> None:
        self.notices += 1
        self._changed.set()

    async def changes(self) -> AsyncIterator[None]:
        """Yields once per burst of notices (coalesced), forever."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            yield None


class NoticeRouter:
    """Reads the change bus once per process and fans notices out to watches."""

    def __init__(self, bus: ChangeBus, *, retry_delay: float = 1.0) -> None:
        self._bus = bus
        self._retry_delay = retry_delay
        self._watches: dict[WatchKey, set[AggregateWatch]] = {}
        self._task: asyncio.Task[None] | None = None
        self.notices_seen = 0

    async def start(self) -> None:
        """Listen to the bus; returns once listening, so no later notice is missed."""
        listening: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(listening), name="change-notices")
        await asyncio.wait({listening, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():  # the task ended before listening: surface why
            await self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def watch(
        self, projection: str, tenant: str, aggregate_type: str, aggregate_id: UUID
    ) -> Iterator[AggregateWatch]:
        """Wakes on notices from ``projection`` (the table the subscription re-reads)."""
        key = (projection, tenant, aggregate_type, aggregate_id)
        watch = AggregateWatch()
        self._watches.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches.get(key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[key]

    @property
    def watch_count(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def dispatch(self, notice: ChangeNotice) -> None:
        self.notices_seen += 1
        key = (notice.projection, notice.tenant, notice.aggregate_type, notice.aggregate_id)
        watches = self._watches.get(key)
        if watches:
            for watch in watches:
                watch.notify()

    async def _run(self, listening: asyncio.Future[None]) -> None:
        first = True
        while True:
            try:
                async with self._bus.listen() as notices:
                    if first:
                        listening.set_result(None)
                        first = False
                    else:
                        self._resync()
                    async for notice in notices:
                        self.dispatch(notice)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if first:
                    raise
                log.warning("change bus lost (%s); listening again in %ss", err, self._retry_delay)
                await asyncio.sleep(self._retry_delay)

    def _resync(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.notify()
