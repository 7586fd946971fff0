"""Request/reply on a nats-py client with the least work per message: the store's hot path.

Every commit is one publish and one reply (JetStream's ack). Through nats-py's
public API each costs more CPU than the commit's own work: ``publish`` checks
and encodes a dict of headers one by one, and each reply becomes a ``Msg``
whose headers are parsed and which hops through a queue and a task before a
callback sees it. Here the caller hands over its header block already encoded,
and replies to the store's inbox are taken straight from the client's protocol
parser: the waiting future gets the body and the raw header block, which is
parsed only if someone asks for it.

Both lean on private parts of nats-py (``_send_command``, and the parser
hooks of ``infrastructure.rawinbox``, which the projector's feed uses too),
pinned to 2.16 in pyproject.toml; every event store contract test runs
through them against a real server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools

import nats.errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from infrastructure.rawinbox import raw_sinks


class Reply:
    """A reply's body and header block; the headers are parsed on first use."""

    __slots__ = ("_headers", "_raw", "data")

    def __init__(self, data: bytes, raw_headers: bytes | None) -> None:
        self.data = data
        self._raw = raw_headers
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str] | None:
        """As nats-py's ``Msg.headers``: ``Status``/``Description`` from the status line."""
        if self._raw is not None:
            self._headers = parse_headers(self._raw)
            self._raw = None
        return self._headers


def parse_headers(raw: bytes) -> dict[str, str] | None:
    """A NATS header block (``NATS/1.0[ status[ description]]\\r\\nName: value\\r\\n...``)."""
    first, _, rest = raw.decode("utf-8", "replace").partition("\r\n")
    headers: dict[str, str] = {}
    status = first[9:12]  # after "NATS/1.0 "
    if status.isdigit():
        headers["Status"] = status
        description = first[13:].strip()
        if description:
            headers["Description"] = description
    for line in rest.split("\r\n"):
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and name and not any(c.isspace() for c in name):
            headers[name] = value.strip()
    return headers or None


class Replies:
    """Requests over one wildcard inbox: a counter names each reply, one timer bounds the waits.

    ``Client.request`` draws a random token and wraps every wait in
    ``asyncio.wait_for``, on top of the per-message costs above. Here every
    request has the same timeout, so deadlines come in order: they queue up,
    and a single timer, set for the oldest, expires whatever is still waiting.
    """

    def __init__(self, nc: Client, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = b""
        self._waiting: dict[bytes, asyncio.Future[Reply]] = {}
        self._deadlines: collections.deque[tuple[float, bytes]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._counter = itertools.count(1)
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()

    async def request(self, subject: str, payload: bytes, head: bytes | None = None) -> Reply:
        """The first reply; raises nats' ``TimeoutError``/``NoRespondersError`` like ``request``.

        ``head`` is a complete NATS header block (``NATS/1.0\\r\\n...\\r\\n\\r\\n``).
        """
        if self._sub is None:
            await self._subscribe()
        token = b"%d" % next(self._counter)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Reply] = loop.create_future()
        self._waiting[token] = reply
        deadline = loop.time() + self._timeout
        self._deadlines.append((deadline, token))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        try:
            await publish(self._nc, subject.encode(), self._prefix + token, payload, head)
            msg = await reply
        finally:
            del self._waiting[token]
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            raise nats.errors.NoRespondersError
        return msg

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sub is not None:
            raw_sinks(self._nc).pop(self._sub._id, None)
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._sub is None:
                prefix = self._nc.new_inbox() + "."
                sub = await self._nc.subscribe(prefix + "*")
                self._prefix = prefix.encode()
                raw_sinks(self._nc)[sub._id] = self._deliver
                self._sub = sub

    def _deliver(self, subject: bytes, _: bytes, data: bytes, headers: bytes | None) -> None:
        reply = self._waiting.get(subject[len(self._prefix) :])
        if reply is not None and not reply.done():
            reply.set_result(Reply(data, headers))

    def _expire(self) -> None:
        """Fail the requests whose deadline passed; wait for the next oldest."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            reply = self._waiting.get(deadlines.popleft()[1])
            if reply is not None and not reply.done():
                reply.set_exception(nats.errors.TimeoutError())
        if deadlines:
            self._timer = loop.call_at(deadlines[0][0], self._expire)


async def publish(
    nc: Client, subject: bytes, reply: bytes, payload: bytes, head: bytes | None
) -> None:
    """``Client.publish`` with the header block already encoded.

    The same checks, errors, statistics and buffering as nats-py's own.
    """
    if nc.is_closed:
        raise nats.errors.ConnectionClosedError
    if nc.is_draining_pubs:
        raise nats.errors.ConnectionDrainingError
    size = len(payload)
    if not nc.is_connected:
        limit = nc._max_pending_size
        if limit <= 0 or size + nc.pending_data_size > limit:
            raise nats.errors.OutboundBufferLimitError
    if size > nc.max_payload:
        raise nats.errors.MaxPayloadError
    if head is None:
        command = b"PUB %s %s %d\r\n%s\r\n" % (subject, reply, size, payload)
    else:
        command = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
            subject,
            reply,
            len(head),
            len(head) + size,
            head,
            payload,
        )
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += size
    await nc._send_command(command)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()
