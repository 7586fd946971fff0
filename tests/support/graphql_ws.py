"""A graphql-transport-ws client on ``websockets``, the read API app, and uvicorn in-process.

The server listens on a socket bound before it starts, so clients can connect
at once: the kernel queues them until uvicorn accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from commands.auth import Authenticator
from infrastructure.changes import ChangeBus
from read_api.app import create_graphql_app
from read_api.subscriptions import SubscriptionHub
from tests.support.api import SECRET

PROTOCOL = "graphql-transport-ws"


@contextlib.asynccontextmanager
async def read_api_app(
    hub: SubscriptionHub, engine: AsyncEngine, bus: ChangeBus
) -> AsyncIterator[Starlette]:
    """The read API's GraphQL endpoint at /graphql, with ``hub`` where the lead's app keeps it."""
    graphql = create_graphql_app(
        engine=engine, repository=None, authenticator=Authenticator(SECRET), bus=bus
    )
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ]
    )
    app.state.subscriptions = hub
    await graphql.start()
    try:
        yield app
    finally:
        await graphql.close()


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on a free port; yields the ``ws://`` URL of ``/graphql``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class GraphQLWS:
    """One connection; messages for each operation id land in their own queue."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.binary_frames = 0
        self._closed: asyncio.Future[Closed] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, payload: dict[str, Any] | None = None, *, init: bool = True
    ) -> AsyncIterator[GraphQLWS]:
        async with connect(url, subprotocols=[PROTOCOL], max_queue=None) as ws:  # type: ignore[list-item]
            client = cls(ws)
            try:
                if init:
                    await client.init(payload)
                yield client
                assert client.binary_frames == 0, "graphql-transport-ws messages are text frames"
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client._reader

    async def init(self, payload: dict[str, Any] | None) -> None:
        await self.send({"type": "connection_init", "payload": payload or {}})
        ack = await self.next("")
        assert ack["type"] == "connection_ack", ack

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None):
        self._queues.setdefault(op_id, asyncio.Queue())
        await self.send(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )

    async def ping(self) -> None:
        """Round trip: the server has handled every message sent before this one."""
        await self.send({"type": "ping"})
        pong = await self.next("")
        assert pong["type"] == "pong", pong

    async def complete(self, op_id: str) -> None:
        await self.send({"id": op_id, "type": "complete"})

    async def next(self, op_id: str) -> dict[str, Any]:
        """The next message for ``op_id`` ("" for connection-level ones); raises ``Closed``."""
        queue = self._queues.setdefault(op_id, asyncio.Queue())
        if not queue.empty():
            return queue.get_nowait()
        getter: asyncio.Future[Any] = asyncio.ensure_future(queue.get())
        closed: asyncio.Future[Any] = self._closed
        await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        raise self._closed.result()

    async def data(self, op_id: str) -> Any:
        """The data of the next ``next`` message for ``op_id``; fails on anything else."""
        message = await self.next(op_id)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]

    def pending(self, op_id: str) -> int:
        """Messages received for ``op_id`` and not read yet."""
        queue = self._queues.get(op_id)
        return 0 if queue is None else queue.qsize()

    async def closed(self) -> Closed:
        return await asyncio.shield(self._closed)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if not isinstance(raw, str):  # the protocol's messages are JSON text
                    self.binary_frames += 1
                message = json.loads(raw)
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                    continue
                self._queues.setdefault(message.get("id", ""), asyncio.Queue()).put_nowait(message)
        except ConnectionClosed:
            pass
        rcvd = self.ws.close_code, self.ws.close_reason or ""
        self._closed.set_result(Closed(*rcvd))
