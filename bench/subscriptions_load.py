"""Subscribers for ``bench.subscriptions``: many graphql-transport-ws subscriptions per socket.

``python -m bench.subscriptions_load --port P --token T --kind device|events
--connections C --per-connection N --rounds R --variables JSON``

Each connection is a bare asyncio protocol speaking just enough RFC 6455 (text
frames out, masked; text, ping and close frames in) to keep the load
generator's cost per received message a few microseconds, so the figures
measure the server. Every received frame is stamped with ``time.monotonic()``
(the same clock as the orchestrator's on Linux) when its chunk arrives.

Protocol with the orchestrator, one line each on stdout: ``READY`` once every
subscription is live, ``DONE <r>`` once every subscription has received its
``r``-th result, and at the end one JSON line with every arrival time by round.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from typing import Any

import orjson

QUERIES = {
    "device": "subscription D($id: UUID!) { deviceUpdated(id: $id) "
    "{ id status anomalyCount version position updatedAt } }",
    "events": "subscription E($id: UUID!, $after: Long!) { events(aggregateId: $id, "
    "after: $after) { position aggregateType aggregateId version type actor occurredAt data } }",
}


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    elif n < 65536:
        header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + key + masked


class Connection(asyncio.Protocol):
    def __init__(self, load: Load, host: str, port: int) -> None:
        self.load = load
        self.request = (
            f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # before READY
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.fail(f"connection lost: {exc}")

    def send(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(_mask(orjson.dumps(message)))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self.upgraded.set_exception(RuntimeError(f"upgrade refused: {status!r}"))
                return
            del buffer[: end + 4]
            self.upgraded.set_result(None)
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            opcode, length, offset = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F, pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, offset = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, offset = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), pos + 10
            if size - offset < length:
                break
            payload = bytes(buffer[offset : offset + length])
            pos = offset + length
            if opcode == 0x1:
                self.load.received(self, orjson.loads(payload), now)
            elif opcode == 0x9:  # ping: answer with a masked pong
                assert self.transport is not None
                frame = _mask(payload)
                self.transport.write(bytes([0x8A]) + frame[1:])
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.load.fail(f"server closed the socket: {code} {payload[2:]!r}")
        del buffer[:pos]


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.total = args.connections * args.per_connection
        self.ready = False
        self.counts: dict[str, int] = {}
        self.arrivals: list[list[float]] = [[] for _ in range(args.rounds)]
        self.done_rounds = 0
        self.last_done = time.monotonic()
        self.all_ids = [
            f"{c}.{n}" for c in range(args.connections) for n in range(args.per_connection)
        ]
        self.finished = asyncio.get_running_loop().create_future()

    def fail(self, why: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(RuntimeError(why))

    def received(self, conn: Connection, message: dict[str, Any], now: float) -> None:
        if not self.ready:
            conn.messages.put_nowait(message)
            return
        kind = message.get("type")
        if kind == "pong" or kind == "ping":
            return
        payload = message.get("payload") or {}
        if kind != "next" or "errors" in payload:
            self.fail(f"unexpected message: {message}")
            return
        op_id = message["id"]
        n = self.counts[op_id] = self.counts.get(op_id, 0) + 1
        if n > self.args.rounds:
            self.fail(f"{op_id} got more results than rounds: {message}")
            return
        arrivals = self.arrivals[n - 1]
        arrivals.append(now)
        if len(arrivals) == self.total:
            self.done_rounds = n
            self.last_done = now
            print(f"DONE {n}", flush=True)
            if n == self.args.rounds and not self.finished.done():
                self.finished.set_result(None)

    async def open(self, index: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: Connection(self, "127.0.0.1", self.args.port), "127.0.0.1", self.args.port
        )
        await conn.upgraded
        conn.send(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {self.args.token}"}}
        )
        assert (await conn.messages.get())["type"] == "connection_ack"
        variables = json.loads(self.args.variables)
        for n in range(self.args.per_connection):
            op_id = f"{index}.{n}"
            query = QUERIES[self.args.kind]
            payload = {"query": query, "variables": variables}
            conn.send({"id": op_id, "type": "subscribe", "payload": payload})
        if self.args.kind == "device":  # each subscription answers with the state now
            for _ in range(self.args.per_connection):
                first = await conn.messages.get()
                assert first["type"] == "next" and "errors" not in first["payload"], first
        conn.send({"type": "ping"})  # answered after every subscribe before it: all joined
        while (await conn.messages.get())["type"] != "pong":
            pass
        return conn

    async def _watchdog(self, every: float = 30.0) -> None:
        """Say on stderr who is still waiting, should a round take very long."""
        while True:
            await asyncio.sleep(every)
            if time.monotonic() - self.last_done < every:
                continue
            round_ = self.done_rounds + 1
            missing = [op for op in self.all_ids if self.counts.get(op, 0) < round_]
            print(
                f"subscriptions_load: round {round_}: {len(missing)} of {self.total} still "
                f"waiting, e.g. {missing[:5]}",
                file=sys.stderr,
                flush=True,
            )

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        conns = await asyncio.gather(*(self.open(i) for i in range(self.args.connections)))
        self.ready = True
        print("READY", flush=True)
        ramp = time.monotonic() - started
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self.finished
        finally:
            watchdog.cancel()
        for conn in conns:
            assert conn.transport is not None
            conn.transport.close()
        return {"subscribers": self.total, "ramp_s": round(ramp, 3), "arrivals": self.arrivals}


async def main_async(args: argparse.Namespace) -> None:
    load = Load(args)
    result = await load.run()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.subscriptions_load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--kind", choices=sorted(QUERIES), required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--per-connection", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--variables", required=True, help="JSON object")
    args = parser.parse_args()
    import uvloop

    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
