"""Messages of one inbox straight from the client's read buffer, without ``Msg`` objects.

nats-py turns every message into a ``Msg``, parses its headers and hands it
over through a queue and a task: several microseconds a message, most of a
projector's budget, and more than a commit's own work for the event store's
acks. Both take their messages here: ``projections.feed`` through a
``RawInbox``, ``infrastructure.eventstore.replies`` by registering its reply
sink in ``raw_sinks``. Even its protocol parser alone (a regular expression, a
dict and a coroutine per message) costs more than a projector can spend on
reading. A ``RawInbox`` registers a plain function for its subscription id,
and the client calls it with subject, reply, body and raw headers:

* on the fast path, straight from each chunk read off the socket: a run of
  ``MSG``/``HMSG`` frames for raw inboxes is cut out of the chunk with
  ``bytes.find`` and slicing, before nats-py's parser sees the rest;
* otherwise (a frame split across two reads, a frame after a ``PING``,
  ``INFO`` or a message for another subscription) through nats-py's own
  parser, which then calls the sink from ``Client._process_msg``.

Either way each frame is parsed exactly once and in order: the fast path only
ever takes complete frames from the start of what nats-py has not parsed yet.
Every other subscription of the client goes the usual way.

This overrides ``Client._process_msg`` and the parser's ``parse`` on the
client instance, both private: nats-py is pinned (2.16) in pyproject for that
reason, and every projection test runs through this path against a real
nats-server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client
from nats.protocol.parser import AWAITING_CONTROL_LINE

_SINKS = "_vigil_raw_sinks"
Sink = Callable[[bytes, bytes, bytes, bytes | None], None]


class RawInbox:
    """A subscription whose messages go to ``sink`` untouched, bypassing nats-py's ``Msg``."""

    def __init__(self, nc: Client, sink: Sink) -> None:
        self._nc = nc
        self._sink = sink
        self.subject = nc.new_inbox()
        self._sid: int | None = None

    async def open(self) -> None:
        sinks = raw_sinks(self._nc)
        sub = await self._nc.subscribe(self.subject)
        self._sid = sub._id
        sinks[self._sid] = self._sink

    async def close(self) -> None:
        if self._sid is None:
            return
        raw_sinks(self._nc).pop(self._sid, None)
        sub = self._nc._subs.get(self._sid)
        self._sid = None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


def take_frames(data: bytes, pos: int, sinks: dict[int, Sink]) -> tuple[int, int]:
    """Hand the complete message frames for ``sinks`` from ``data[pos:]`` to them, in order.

    Stops at the first thing that is not such a frame and returns where, with
    the end of that thing when it is complete (another operation, another
    subscription's message), for nats-py's parser; or -1 when it is cut
    short (the rest is still on its way) or ``data`` is used up.
    """
    size = len(data)
    while pos < size:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return pos, -1
        if data.startswith(b"HMSG ", pos):
            args = data[pos + 5 : eol].split(b" ")
            if len(args) == 5:  # subject sid reply header-size total-size
                subject, sid, reply, head, total = args
            elif len(args) == 4:
                subject, sid, head, total = args
                reply = b""
            else:
                return pos, eol + 2  # malformed: nats-py's parser says so
            head_size = int(head)
        elif data.startswith(b"MSG ", pos):
            args = data[pos + 4 : eol].split(b" ")
            if len(args) == 4:  # subject sid reply size
                subject, sid, reply, total = args
            elif len(args) == 3:
                subject, sid, total = args
                reply = b""
            else:
                return pos, eol + 2
            head_size = 0
        else:
            return pos, eol + 2  # PING, INFO, +OK, -ERR...: one line each
        start = eol + 2
        end = start + int(total) + 2
        if end > size:
            return pos, -1
        sink = sinks.get(int(sid))
        if sink is None:
            return pos, end
        body = start + head_size
        sink(subject, reply, data[body : end - 2], data[start:body] if head_size else None)
        pos = end
    return pos, -1


def raw_sinks(nc: Client) -> dict[int, Sink]:
    """The client's raw sinks by subscription id, installing the parser hooks on first use."""
    sinks: dict[int, Sink] | None = getattr(nc, _SINKS, None)
    if sinks is None:
        installed: dict[int, Sink] = {}
        original = nc._process_msg
        parser = nc._ps
        original_parse = parser.parse

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            sink = installed.get(sid)
            if sink is None:
                await original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            else:
                sink(subject, reply, data, headers)

        async def parse(data: bytes = b"") -> None:
            if not installed or parser.state != AWAITING_CONTROL_LINE:
                await original_parse(data)  # nats-py is in the middle of a frame: let it finish
                return
            buffer = parser.buf
            if buffer:
                data = bytes(buffer) + data
                buffer.clear()
            pos = 0
            while True:
                pos, end = take_frames(data, pos, installed)
                if end < 0:
                    break
                # One whole operation that is not ours: nats-py's parser takes it alone.
                await original_parse(data[pos:end])
                pos = end
            if pos < len(data):
                parser.buf.extend(data[pos:])  # a frame cut short: the next read completes it

        setattr(nc, "_process_msg", process_msg)  # noqa: B010 - an instance override, on purpose
        setattr(parser, "parse", parse)  # noqa: B010 - likewise
        setattr(nc, _SINKS, installed)
        sinks = installed
    return sinks
