"""A lean HTTP/1.1 load generator, run as its own process.

Python HTTP clients (httpx, aiohttp) spend more CPU per request than the
servers they would measure here, so this one speaks HTTP/1.1 directly over
uvloop protocols: one keep-alive connection per client, one request in flight
per connection, and the next request is written from the callback that parsed
the previous response (no coroutine, no future per request). Requests are
pre-rendered byte templates; responses are parsed only as far as the status
line and ``Content-Length`` (bodies are decoded only when ids must be kept).

Modes:

* ``echo``: ``POST /echo`` with a command-shaped JSON body against the plain
  Starlette peer (``--serve-peer`` runs it), the reference for what the HTTP
  stack and this client can do with no work behind the endpoint.
* ``register``: ``RegisterDevice`` a fixed number of times per connection;
  writes the new aggregate ids to ``--ids-out``.
* ``anomaly``: ``RaiseAnomaly`` against the devices in ``--ids`` (each
  connection owns its own devices, so there are no conflicts), for
  ``--duration`` seconds after ``--warmup``.

Prints one JSON line: count, rps, latency p50/p99, status counts and the
client's own CPU use (close to 1.0 would mean the client, not the server, is
the bottleneck).

Only loopback targets are accepted: this is a benchmark client, not a load
testing tool for other hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import json
import resource
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import orjson

from bench.common import CpuWatch, latency_summary

HEADER_END = b"\r\n\r\n"


class Plan:
    """What each connection sends: a function of (connection, sequence number)."""

    def __init__(self, mode: str, host: str, port: int, token: str, ids: list[str]) -> None:
        self.mode = mode
        self.run = secrets.token_hex(4)
        self.host_header = f"{host}:{port}".encode()
        self.auth = f"Bearer {token}".encode() if token else b""
        self.ids = ids
        self._own: dict[int, list[str]] = {}

    def _request(self, path: bytes, body: bytes, key: bytes) -> bytes:
        head = [
            b"POST " + path + b" HTTP/1.1",
            b"Host: " + self.host_header,
            b"Content-Type: application/json",
            b"Content-Length: " + str(len(body)).encode(),
            b"Idempotency-Key: " + key,
        ]
        if self.auth:
            head.append(b"Authorization: " + self.auth)
        return b"\r\n".join(head) + HEADER_END + body

    def request(self, conn: int, seq: int, connections: int) -> bytes:
        key = f"{self.run}-{conn}-{seq}".encode()
        if self.mode == "register":
            body = orjson.dumps(
                {"serial_number": f"bench-{self.run}-{conn}-{seq}", "hardware_profile": "orin-nx"}
            )
            return self._request(b"/commands/RegisterDevice", body, key)
        if self.mode == "anomaly":
            own = self._own.get(conn)
            if own is None:
                own = self._own[conn] = self.ids[conn::connections]
            device = own[seq % len(own)]
            body = orjson.dumps(
                {
                    "device_id": device,
                    "kind": "thermal",
                    "severity": "warning",
                    "detail": f"npu at 91C, seq {seq}",
                }
            )
            return self._request(b"/commands/RaiseAnomaly", body, key)
        body = orjson.dumps(
            {
                "device_id": "00000000-0000-0000-0000-000000000000",
                "kind": "thermal",
                "severity": "warning",
                "detail": f"npu at 91C, seq {seq}",
            }
        )
        return self._request(b"/echo", body, key)


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.completed_at: list[float] = []  # filled only with --timeline
        self.timeline = False
        self.statuses: Counter[int] = Counter()
        self.window_start = 0.0
        self.window_end = float("inf")
        self.stopping = False
        self.ids: list[str] = []
        self.errors: list[str] = []
        self.first_error_body: str | None = None


class Connection(asyncio.Protocol):
    def __init__(
        self,
        index: int,
        plan: Plan,
        stats: Stats,
        connections: int,
        limit: int | None,
        keep_ids: bool,
        done: asyncio.Future[None],
    ) -> None:
        self.index = index
        self.plan = plan
        self.stats = stats
        self.connections = connections
        self.limit = limit
        self.keep_ids = keep_ids
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.seq = 0
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        if self.stats.stopping or (self.limit is not None and self.seq >= self.limit):
            self._finish()
            return
        request = self.plan.request(self.index, self.seq, self.connections)
        self.seq += 1
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def _finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(HEADER_END)
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = _content_length(head)
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        now = time.perf_counter()
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        stats = self.stats
        if self.sent_at >= stats.window_start and now <= stats.window_end:
            stats.latencies.append(now - self.sent_at)
            stats.statuses[status] += 1
            if stats.timeline:
                stats.completed_at.append(now)
        if status >= 400 and stats.first_error_body is None:
            stats.first_error_body = f"{status} {body[:500].decode(errors='replace')}"
        if self.keep_ids and status == 201:
            stats.ids.append(str(orjson.loads(body)["aggregate_id"]))
        if b"connection: close" in head.lower():
            self.stats.errors.append(f"connection {self.index}: server closed the connection")
            self._finish()
            return
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if not self.stats.stopping and (self.limit is None or self.seq < self.limit):
                self.stats.errors.append(f"connection {self.index} lost: {exc}")
            self.done.set_result(None)


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        if b"transfer-encoding: chunked" in lower:
            raise RuntimeError("chunked responses are not supported by this client")
        return 0
    start = at + len(b"\r\ncontent-length:")
    stop = lower.find(b"\r\n", start)
    return int(lower[start : stop if stop >= 0 else None])


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load {host}: only loopback targets are allowed")


async def run_load(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    _check_loopback(args.host)
    if args.mode == "anomaly" and len(ids) < args.connections:
        raise SystemExit("anomaly mode needs at least one device id per connection")
    plan = Plan(args.mode, args.host, args.port, args.token or "", ids)
    stats = Stats()
    stats.timeline = args.timeline
    loop = asyncio.get_running_loop()
    limit = args.per_connection if args.mode == "register" else None
    timed = limit is None
    keep_ids = args.mode == "register"
    start = time.perf_counter()
    if not timed:
        stats.window_start = start

    def factory(index: int, done: asyncio.Future[None]) -> Connection:
        return Connection(index, plan, stats, args.connections, limit, keep_ids, done)

    futures: list[asyncio.Future[None]] = []
    for index in range(args.connections):
        done: asyncio.Future[None] = loop.create_future()
        futures.append(done)
        await loop.create_connection(functools.partial(factory, index, done), args.host, args.port)
    watch = CpuWatch(_parse_watch(args.watch))
    if timed:
        await asyncio.sleep(args.warmup)
        cpu_before = _cpu()
        watch.start()
        stats.window_start = time.perf_counter()
        await asyncio.sleep(args.duration)
        stats.window_end = time.perf_counter()
        cpu_after = _cpu()
        watched = watch.stop()
        stats.stopping = True
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
        elapsed = stats.window_end - stats.window_start
    else:
        cpu_before = _cpu()
        watch.start()
        await asyncio.wait_for(asyncio.gather(*futures), timeout=args.timeout)
        cpu_after = _cpu()
        watched = watch.stop()
        elapsed = time.perf_counter() - start
    count = len(stats.latencies)
    ok = sum(n for status, n in stats.statuses.items() if status < 400)
    result: dict[str, Any] = {
        "mode": args.mode,
        "connections": args.connections,
        "duration_s": round(elapsed, 3),
        "count": count,
        "ok": ok,
        "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "client_cpu": round((cpu_after - cpu_before) / elapsed, 3) if elapsed > 0 else 0.0,
        "server_cpu": watched,
        **latency_summary(stats.latencies),
    }
    if stats.timeline:
        result["timeline"] = _timeline(stats)
    if stats.errors:
        result["connection_errors"] = stats.errors[:10]
    if stats.first_error_body:
        result["first_error"] = stats.first_error_body
    if args.mode == "register":
        result["ids"] = stats.ids
    return result


def _timeline(stats: Stats, bucket: float = 0.1) -> list[list[float]]:
    """[offset s, responses, worst latency ms] per ``bucket`` of the window: shows stalls."""
    rows: dict[int, list[float]] = {}
    for done, latency in zip(stats.completed_at, stats.latencies, strict=True):
        row = rows.setdefault(int((done - stats.window_start) / bucket), [0, 0.0])
        row[0] += 1
        row[1] = max(row[1], latency * 1000)
    return [
        [
            round(index * bucket, 2),
            rows.get(index, [0, 0.0])[0],
            round(rows.get(index, [0, 0.0])[1], 1),
        ]
        for index in range(max(rows, default=-1) + 1)
    ]


def _parse_watch(spec: str | None) -> dict[str, int]:
    pids: dict[str, int] = {}
    for item in (spec or "").split(","):
        if item:
            name, _, pid = item.partition("=")
            pids[name] = int(pid)
    return pids


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The plain Starlette peer: parse the JSON body, answer 201 with JSON. -------------


def peer_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        body = await request.json()
        return JSONResponse(
            {"aggregate_id": body.get("device_id"), "version": 1, "position": 1}, status_code=201
        )

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])])


def serve_peer(host: str, port: int) -> None:
    import uvicorn

    _check_loopback(host)
    uvicorn.run(
        peer_app(),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("echo", "register", "anomaly"), default="echo")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--per-connection", type=int, default=4, help="register mode: requests")
    parser.add_argument("--timeout", type=float, default=300.0, help="register mode: seconds")
    parser.add_argument("--token", default="", help="bearer token")
    parser.add_argument("--ids", help="JSON file of device ids (anomaly mode)")
    parser.add_argument("--ids-out", help="write the ids of registered aggregates here")
    parser.add_argument("--watch", help="name=pid,... whose CPU use to report for the window")
    parser.add_argument("--timeline", action="store_true", help="add per-100ms buckets")
    parser.add_argument("--serve-peer", action="store_true", help="run the Starlette peer")
    args = parser.parse_args(argv)
    if args.serve_peer:
        serve_peer(args.host, args.port)
        return 0
    import uvloop

    ids: list[str] = json.loads(Path(args.ids).read_text()) if args.ids else []
    result = uvloop.run(run_load(args, ids))
    registered = result.pop("ids", None)
    if args.ids_out and registered is not None:
        Path(args.ids_out).write_text(json.dumps(registered))
        result["ids"] = len(registered)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
