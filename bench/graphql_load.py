"""GraphQL load: ``bench.loadgen``'s keep-alive connections, sending GraphQL POSTs.

``bench.loadgen`` renders command bodies only; this module gives its
``Connection`` protocol a plan of pre-rendered GraphQL requests (one per
device id for ``device``, one document for ``devices``) and measures the same
way: with ``--prime`` every distinct request once, then a warm-up, then a
timed window; one JSON line on stdout with rps,
latency percentiles, status counts, GraphQL error count and CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import CpuWatch, latency_summary
from bench.loadgen import HEADER_END, Connection, Stats, _check_loopback, _cpu, _parse_watch

DEVICE_QUERY = (
    "query Device($id: UUID!) { device(id: $id) { id serialNumber status health fleetId "
    "reportedModelVersion lastSeenAt anomalyCount version } }"
)
DEVICES_QUERY = (
    "query Devices { devices(first: 100) { edges { cursor node { id serialNumber status "
    "health fleetId reportedModelVersion lastSeenAt } } pageInfo { hasNextPage endCursor } } }"
)


class GraphQLPlan:
    """Requests as bytes, rendered once; ``request`` picks one per (connection, sequence)."""

    def __init__(self, host: str, port: int, token: str, bodies: list[bytes]) -> None:
        head = [
            b"POST /graphql HTTP/1.1",
            f"Host: {host}:{port}".encode(),
            b"Content-Type: application/json",
            f"Authorization: Bearer {token}".encode(),
        ]
        self.requests = [
            b"\r\n".join([*head, b"Content-Length: " + str(len(body)).encode()]) + HEADER_END + body
            for body in bodies
        ]

    def request(self, conn: int, seq: int, connections: int) -> bytes:
        return self.requests[(conn * 7919 + seq) % len(self.requests)]


def bodies(mode: str, ids: list[str]) -> list[bytes]:
    if mode == "device":
        return [orjson.dumps({"query": DEVICE_QUERY, "variables": {"id": i}}) for i in ids]
    return [orjson.dumps({"query": DEVICES_QUERY})]


class CheckedConnection(Connection):
    """Counts responses that carry GraphQL errors, so a fast failure never passes as speed."""

    def data_received(self, data: bytes) -> None:
        if b'"errors"' in data:
            self.stats.errors.append("graphql error")
            if self.stats.first_error_body is None:
                self.stats.first_error_body = data[-500:].decode(errors="replace")
        super().data_received(data)


async def prime(args: argparse.Namespace, requests: list[bytes]) -> None:
    """Send every distinct request once, 16 at a time, and read each answer."""
    pending = iter(requests)

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(args.host, args.port)
        try:
            for request in pending:
                writer.write(request)
                head = await reader.readuntil(HEADER_END)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(16)))


async def run(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    _check_loopback(args.host)
    plan = GraphQLPlan(args.host, args.port, args.token, bodies(args.mode, ids))
    if args.prime:
        await prime(args, plan.requests)
    stats = Stats()
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    for index in range(args.connections):
        done: asyncio.Future[None] = loop.create_future()
        futures.append(done)
        factory = functools.partial(
            CheckedConnection,
            index,
            plan,  # type: ignore[arg-type]  # duck-typed: loadgen only calls .request()
            stats,
            args.connections,
            None,
            False,
            done,
        )
        await loop.create_connection(factory, args.host, args.port)
    await asyncio.sleep(args.warmup)
    watch = CpuWatch(_parse_watch(args.watch))
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
    ok = sum(n for status, n in stats.statuses.items() if status < 400)
    return {
        "mode": args.mode,
        "connections": args.connections,
        "duration_s": round(elapsed, 3),
        "count": len(stats.latencies),
        "rps": round(ok / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "graphql_errors": len(stats.errors),
        "first_error": stats.first_error_body,
        "client_cpu": round((cpu_after - cpu_before) / elapsed, 3),
        "server_cpu": watched,
        **latency_summary(stats.latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.graphql_load", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("device", "devices"), required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ids", help="JSON file of device ids (device mode)")
    parser.add_argument("--watch", help="name=pid,... whose CPU use to report")
    parser.add_argument(
        "--prime", action="store_true", help="send every distinct request once before the warm-up"
    )
    args = parser.parse_args(argv)
    import uvloop

    ids: list[str] = json.loads(Path(args.ids).read_text()) if args.ids else []
    result = uvloop.run(run(args, ids))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
