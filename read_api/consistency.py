"""Read-your-writes: wait until the read models have applied a given commit position.

The command API answers every command with the commit's stream position. A
GraphQL request that names it (``X-Vigil-Min-Position`` header or a
``minPosition`` argument) is answered only once each projection it reads has
a checkpoint at or past it, or fails with ``CONSISTENCY_TIMEOUT`` after a
bounded wait.

One ``CheckpointWatcher`` per process serves every waiting request:

* positions already confirmed are remembered, so a request whose position has
  long been reached costs no query at all;
* otherwise waiters queue up and a single poll loop reads the checkpoint rows
  for all of them at once; a change notice (``infrastructure.changes``) wakes
  it at once, and without notices it polls with exponential backoff. A
  projection's checkpoint can move past a position without a notice (when the
  commit there touched none of its rows), so notices only hurry the poll: the
  table is always what confirms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.changes import ChangeNotice
from projections.tables import projection_checkpoints
from read_api.errors import ConsistencyTimeout

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Waiter:
    names: tuple[str, ...]
    position: int
    future: asyncio.Future[None]


class CheckpointWatcher:
    def __init__(
        self, engine: AsyncEngine, *, first_poll: float = 0.005, max_poll: float = 0.2
    ) -> None:
        self.engine = engine
        self.first_poll = first_poll
        self.max_poll = max_poll
        self.queries = 0  # checkpoint reads so far, for tests and metrics
        self._confirmed: dict[str, int] = {}
        self._waiters: set[_Waiter] = set()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests waiting right now."""
        return len(self._waiters)

    def confirmed(self, name: str) -> int:
        return self._confirmed.get(name, 0)

    def notice(self, notice: ChangeNotice) -> None:
        """A projection committed up to ``notice.position``: re-read now if anyone waits."""
        if any(notice.position >= waiter.position for waiter in self._waiters):
            self._wake.set()

    async def wait(self, names: Iterable[str], position: int, within: float) -> None:
        names = tuple(names)
        if self._reached(names, position):
            return
        await self._refresh(names)
        if self._reached(names, position):
            return
        waiter = _Waiter(names, position, asyncio.get_running_loop().create_future())
        self._waiters.add(waiter)
        self._ensure_poller()
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), within)
        except TimeoutError:
            reached = {name: self.confirmed(name) for name in names}
            raise ConsistencyTimeout(position, reached, within) from None
        finally:
            self._waiters.discard(waiter)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    def _reached(self, names: tuple[str, ...], position: int) -> bool:
        return all(self._confirmed.get(name, 0) >= position for name in names)

    async def _refresh(self, names: Iterable[str]) -> None:
        table = projection_checkpoints
        query = sa.select(table.c.name, table.c.position).where(table.c.name.in_(set(names)))
        self.queries += 1
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        for name, position in rows:
            if position > self._confirmed.get(name, 0):
                self._confirmed[name] = int(position)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        delay = self.first_poll
        while self._waiters:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
                delay = self.first_poll
            except TimeoutError:
                delay = min(delay * 2, self.max_poll)
            self._wake.clear()
            names = {name for waiter in self._waiters for name in waiter.names}
            try:
                await self._refresh(names)
            except Exception:
                log.warning("reading projection checkpoints failed", exc_info=True)
                continue
            for waiter in list(self._waiters):
                if self._reached(waiter.names, waiter.position) and not waiter.future.done():
                    waiter.future.set_result(None)
