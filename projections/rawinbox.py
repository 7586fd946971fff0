"""Messages of one inbox straight from nats-py's protocol parser, without ``Msg`` objects.

nats-py turns every message into a ``Msg``, parses its headers and hands it
over through a queue and a task: several microseconds a message, most of a
projector's budget. A ``RawInbox`` registers a plain function for its
subscription id and the client calls it with subject, reply, body and raw
headers as soon as the parser has them. Every other subscription of the
client goes the usual way.

This overrides ``Client._process_msg`` on the client instance, a private
method: nats-py is pinned (2.16) in pyproject for that reason, and every
projection test runs through this path against a real nats-server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client

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
        sinks = _sinks(self._nc)
        sub = await self._nc.subscribe(self.subject)
        self._sid = sub._id
        sinks[self._sid] = self._sink

    async def close(self) -> None:
        if self._sid is None:
            return
        _sinks(self._nc).pop(self._sid, None)
        sub = self._nc._subs.get(self._sid)
        self._sid = None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


def _sinks(nc: Client) -> dict[int, Sink]:
    """The client's raw sinks, installing the parser hook on first use."""
    sinks: dict[int, Sink] | None = getattr(nc, _SINKS, None)
    if sinks is None:
        installed: dict[int, Sink] = {}
        original = nc._process_msg

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            sink = installed.get(sid)
            if sink is None:
                await original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            else:
                sink(subject, reply, data, headers)

        setattr(nc, "_process_msg", process_msg)  # noqa: B010 - an instance override, on purpose
        setattr(nc, _SINKS, installed)
        sinks = installed
    return sinks
