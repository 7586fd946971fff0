"""One listener on the change bus per process, feeding the row cache and the watcher.

The listener starts on the first request (nothing connects at import or at
construction) and restarts with backoff if the bus fails. Each (re)start
clears the row cache: notices published while nobody listened are lost, and
any cached row may be one of the rows they would have retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from infrastructure.changes import ChangeBus, ChangeNotice

log = logging.getLogger(__name__)

Sink = Callable[[ChangeNotice], None]


class NoticeFeed:
    def __init__(self, bus: ChangeBus, sinks: Sequence[Sink], on_start: Callable[[], None]) -> None:
        self.bus = bus
        self.sinks = sinks
        self.on_start = on_start
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                async with self.bus.listen() as notices:
                    self.on_start()
                    self.listening.set()
                    delay = 0.1
                    async for notice in notices:
                        for sink in self.sinks:
                            sink(notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("change feed failed; listening again in %.1fs", delay, exc_info=True)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
