"""``ChangeBus`` over Redis pub/sub: the projector's notices reach every API process.

One ``PUBLISH`` per batch (a JSON list of notices) on one channel per
deployment. ``listen()`` returns only once Redis has confirmed the
subscription, so a notice published after it returns is never missed by that
listener. Like every ``ChangeBus`` it is best effort: a listener that is
disconnected misses what was published meanwhile (``NoticeRouter`` re-reads
every watched row when it listens again).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis

from infrastructure.changes import ChangeBus, ChangeNotice

DEFAULT_CHANNEL = "vigil:changes"


def encode_notices(notices: list[ChangeNotice]) -> bytes:
    return orjson.dumps(
        [
            [n.projection, n.tenant, n.aggregate_type, n.aggregate_id.hex, n.version, n.position]
            for n in notices
        ]
    )


def decode_notices(data: bytes | str) -> list[ChangeNotice]:
    return [
        ChangeNotice(
            projection=projection,
            tenant=tenant,
            aggregate_type=aggregate_type,
            aggregate_id=UUID(hex=id_hex),
            version=version,
            position=position,
        )
        for projection, tenant, aggregate_type, id_hex, version, position in orjson.loads(data)
    ]


class RedisChangeBus(ChangeBus):
    """Takes a connected ``redis.asyncio.Redis``; ``close()`` closes it only if ``owns_client``."""

    def __init__(
        self,
        redis: Redis,
        *,
        channel: str = DEFAULT_CHANNEL,
        owns_client: bool = False,
        subscribe_timeout: float = 5.0,
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._owns_client = owns_client
        self._subscribe_timeout = subscribe_timeout

    @classmethod
    def from_url(cls, url: str, *, channel: str = DEFAULT_CHANNEL) -> RedisChangeBus:
        return cls(Redis.from_url(url), channel=channel, owns_client=True)

    async def publish(self, notices: list[ChangeNotice]) -> None:
        if notices:
            await self._redis.publish(self._channel, encode_notices(notices))

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[AsyncIterator[ChangeNotice]]:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            await self._confirmed(pubsub)
            yield self._notices(pubsub)
        finally:
            with contextlib.suppress(Exception):  # the connection may be what failed
                await pubsub.unsubscribe()
            await pubsub.aclose()

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()

    async def _confirmed(self, pubsub: Any) -> None:
        message = await pubsub.get_message(timeout=self._subscribe_timeout)
        if message is None or message.get("type") != "subscribe":
            raise ConnectionError(f"Redis did not confirm the subscription to {self._channel}")

    async def _notices(self, pubsub: Any) -> AsyncIterator[ChangeNotice]:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            for notice in decode_notices(message["data"]):
                yield notice
