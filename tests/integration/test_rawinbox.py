"""The raw inbox takes its messages straight from the read buffer, however the reads cut them.

The byte stream is fed to the client's own (hooked) parser piece by piece,
cut at every possible place, on a client connected to a real nats-server: a
raw inbox must see exactly the frames sent to it, in order, and everything
else (a PING, another subscription's message) must still reach nats-py.
"""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from infrastructure.rawinbox import RawInbox, take_frames

pytestmark = pytest.mark.integration

Frame = tuple[bytes, bytes, bytes, bytes | None]


def _hmsg(subject: bytes, sid: int, reply: bytes, headers: bytes, body: bytes) -> bytes:
    total = len(headers) + len(body)
    line = b"HMSG %s %d %s %d %d\r\n" % (subject, sid, reply, len(headers), total)
    return line + headers + body + b"\r\n"


def _msg(subject: bytes, sid: int, body: bytes) -> bytes:
    return b"MSG %s %d %d\r\n" % (subject, sid, len(body)) + body + b"\r\n"


async def test_frames_cut_anywhere_reach_the_inbox_whole_and_in_order(nats_client: Client):
    received: list[Frame] = []
    inbox = RawInbox(nats_client, lambda *frame: received.append(frame))
    await inbox.open()
    others: list[Msg] = []
    all_others = asyncio.Event()

    async def other(msg: Msg) -> None:
        others.append(msg)
        if len(others) == len(stream) - 1:  # one per cut
            all_others.set()

    sub = await nats_client.subscribe("elsewhere", cb=other)
    ours = nats_client._vigil_raw_sinks  # type: ignore[attr-defined]
    (sid,) = ours
    status = b"NATS/1.0 408 Request Timeout\r\n\r\n"
    stream = b"".join(
        [
            _hmsg(b"evt.a", sid, b"$JS.ACK.S.C.1.1.1.0.2", b"NATS/1.0\r\nK: v\r\n\r\n", b"\x01one"),
            _msg(b"evt.b", sid, b"two\r\nwith a line break"),
            b"PING\r\n",
            _msg(b"elsewhere", sub._id, b"not ours"),
            _hmsg(b"evt.c", sid, b"$JS.ACK.S.C.1.2.2.0.0", b"NATS/1.0\r\n\r\n", b""),
            b"HMSG %s %d %d %d\r\n" % (inbox.subject.encode(), sid, len(status), len(status)),
            status + b"\r\n",
        ]
    )
    expected: list[Frame] = [
        (b"evt.a", b"$JS.ACK.S.C.1.1.1.0.2", b"\x01one", b"NATS/1.0\r\nK: v\r\n\r\n"),
        (b"evt.b", b"", b"two\r\nwith a line break", None),
        (b"evt.c", b"$JS.ACK.S.C.1.2.2.0.0", b"", b"NATS/1.0\r\n\r\n"),
        (inbox.subject.encode(), b"", b"", status),
    ]
    parse = nats_client._ps.parse
    for cut in range(1, len(stream)):
        received.clear()
        await parse(stream[:cut])
        await parse(stream[cut:])
        assert received == expected, f"cut at {cut}"
        assert not nats_client._ps.buf
    await asyncio.wait_for(all_others.wait(), 10)  # nats-py hands them over through a task
    assert {msg.data for msg in others} == {b"not ours"}
    await inbox.close()
    await sub.unsubscribe()


def test_taking_frames_stops_at_the_first_thing_that_is_not_a_whole_frame_of_ours():
    got: list[Frame] = []
    sinks = {7: lambda *frame: got.append(frame)}
    ours = _msg(b"a", 7, b"x")
    foreign = _msg(b"b", 8, b"y")

    assert take_frames(ours + foreign, 0, sinks) == (len(ours), len(ours) + len(foreign))
    assert take_frames(ours + b"PONG\r\n", 0, sinks) == (len(ours), len(ours) + 6)
    assert take_frames(ours + ours[:-1], 0, sinks) == (len(ours), -1)
    assert take_frames(ours + b"MSG a 7", 0, sinks) == (len(ours), -1)
    assert take_frames(ours, 0, sinks) == (len(ours), -1)
    assert got == [(b"a", b"", b"x", None)] * 5
