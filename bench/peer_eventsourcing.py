"""The peer for (c): the ``eventsourcing`` library's own Application on PostgreSQL.

Runs in its own process (so its CPU use is its own) against a database the
orchestrator created, with the same domain as Vigil: the real ``Device``
aggregate, created with ``Device.register`` and then given one
``AnomalyRaised`` event per save, so one save stores one event, exactly as
one Vigil commit in (a) does. Aggregates stay in memory between saves, as
they do in (a): this measures the write path, not loading.

``--threads 1`` saves sequentially; more threads save concurrently, each
thread on its own devices, through the library's connection pool. (The
library's application recorder takes an exclusive table lock per insert to
number notifications gaplessly, so concurrency buys it little.)

The database's ``synchronous_commit`` is set by the orchestrator with
``ALTER DATABASE`` before this process connects. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import latency_summary, postgres_env


def run(
    dbname: str, *, devices: int, events: int, threads: int, duration: float | None
) -> dict[str, Any]:
    from eventsourcing.application import Application

    from domain.device import Device

    env = postgres_env(dbname)
    env["POSTGRES_POOL_SIZE"] = str(max(1, threads))
    env["POSTGRES_MAX_OVERFLOW"] = "0"
    env["POSTGRES_MAX_WAITING"] = "0"
    env["CREATE_TABLE"] = "y"
    app: Application[Any] = Application(env=env)
    try:
        run_id = secrets.token_hex(4)
        at = datetime.now(UTC)

        # Create phase: one save per new aggregate.
        created: list[Device] = []
        start = time.perf_counter()
        for n in range(devices):
            device = Device.register(
                tenant_id="bench",
                serial_number=f"peer-{run_id}-{n}",
                hardware_profile="orin-nx",
                actor="bench",
                at=at,
            )
            app.save(device)
            created.append(device)
        create_elapsed = time.perf_counter() - start

        # Append phase: one AnomalyRaised event per save.
        per_thread = max(1, events // threads)
        latencies: list[list[float]] = [[] for _ in range(threads)]
        failures: list[BaseException] = []
        deadline = float("inf")
        barrier = threading.Barrier(threads + 1)

        def worker(index: int) -> None:
            own = created[index::threads]
            out = latencies[index]
            barrier.wait()
            try:
                for seq in range(per_thread):
                    device = own[seq % len(own)]
                    t0 = time.perf_counter()
                    device.raise_anomaly(
                        "thermal", "warning", f"npu at 91C, seq {seq}", actor="bench", at=at
                    )
                    app.save(device)
                    out.append(time.perf_counter() - t0)
                    if t0 > deadline:
                        break
            except BaseException as err:
                failures.append(err)

        pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for thread in pool:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        if duration is not None:
            deadline = start + duration
        cpu_before = time.process_time()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
        if failures:
            raise failures[0]
        all_latencies = [x for chunk in latencies for x in chunk]
        saved = len(all_latencies)
        return {
            "threads": threads,
            "devices": devices,
            "create_saves_per_s": round(devices / create_elapsed, 1),
            "saves": saved,
            "elapsed_s": round(elapsed, 3),
            "saves_per_s": round(saved / elapsed, 1),
            "events_per_s": round(saved / elapsed, 1),
            "client_cpu": round(cpu / elapsed, 3),
            **latency_summary(all_latencies),
        }
    finally:
        app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_eventsourcing", description=__doc__)
    parser.add_argument("--db", required=True, help="database name (created by the caller)")
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--events", type=int, default=2000, help="saves in the append phase")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--duration", type=float, help="stop the append phase after this long")
    args = parser.parse_args(argv)
    if args.devices < args.threads:
        parser.error("need at least one device per thread")
    os.environ.pop("PERSISTENCE_MODULE", None)  # the env passed to Application decides
    result = run(
        args.db,
        devices=args.devices,
        events=args.events,
        threads=args.threads,
        duration=args.duration,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
