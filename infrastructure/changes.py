"""Change notices: what a projection tells the read API after it commits.

The projector publishes one ``ChangeNotice`` per aggregate a batch touched,
*after* the database transaction committed, so a subscriber that re-reads the
read model always sees the change. Embedded, the bus is in-process; with
several API processes it is Redis pub/sub (``read_api`` provides that adapter).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    projection: str  # e.g. "devices", "fleets", "models", "timeline"
    tenant: str
    aggregate_type: str  # "device", "fleet", "model"
    aggregate_id: UUID
    version: int  # aggregate version now reflected in the read model
    position: int  # commit position now reflected in the read model


class ChangeBus(abc.ABC):
    @abc.abstractmethod
    async def publish(self, notices: list[ChangeNotice]) -> None:
        """Deliver ``notices`` to every current listener (best effort, in order)."""

    @abc.abstractmethod
    def listen(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[ChangeNotice]]:
        """Notices published from now on, until the context exits."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the in-process bus has none."""


class LocalChangeBus(ChangeBus):
    """In-process fan-out for one API process (the embedded default)."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._queues: set[asyncio.Queue[ChangeNotice]] = set()
        self._queue_size = queue_size

    async def publish(self, notices: list[ChangeNotice]) -> None:
        for queue in list(self._queues):
            for notice in notices:
                if queue.full():  # a stuck listener must not stall the projector
                    queue.get_nowait()
                queue.put_nowait(notice)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[AsyncIterator[ChangeNotice]]:
        queue: asyncio.Queue[ChangeNotice] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)

        async def notices() -> AsyncIterator[ChangeNotice]:
            while True:
                yield await queue.get()

        try:
            yield notices()
        finally:
            self._queues.discard(queue)
