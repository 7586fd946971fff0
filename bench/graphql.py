"""The GraphQL read benchmark: ``python -m bench.graphql [--quick] [--output FILE]``.

Measured in one run, against one throwaway PostgreSQL database seeded with
devices, fleets and models of one tenant, each server on one uvicorn worker
(uvloop, httptools) driven by ``bench.graphql_load`` in its own process:

* ``device(id)`` rotating over the seeded ids, and ``devices(first: 100)``;
  every distinct request is sent once before the warm-up (``--prime``), so
  the timed window sees a server in its steady state, whatever its caches;
* servers: ``vigil`` (the real ``read_api`` app with its change bus, so its
  cache of rows and pages is on: no writes arrive during the run, so after
  the first reads every answer comes from memory), ``vigil-nocache`` (the
  same app, every read from PostgreSQL) and ``peer`` (``bench.graphql_peer``:
  a plain strawberry schema over the same tables, no caching of any kind).

Goals (DESIGN.md): device(id) >= 3,000 req/s with p99 < 10 ms, devices(first:
100) >= 1,000 req/s. Nothing is asserted: figures and verdicts go to
``bench/results/graphql.json``. The database, servers and temporary files
are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    PG_DSN,
    BenchDatabase,
    Cleanup,
    machine_info,
    make_workdir,
    python_env,
    run_json,
    served,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "graphql.json"
TENANT = "bench"
SERVERS = ("vigil", "vigil-nocache", "peer")
GOALS = {"device_rps": 3_000, "device_p99_ms": 10.0, "devices_rps": 1_000}


def _log(message: str) -> None:
    print(f"bench.graphql: {message}", file=sys.stderr, flush=True)


def _pg_url(dbname: str) -> str:
    params = dict(part.split("=", 1) for part in PG_DSN.split())
    user, host, port = params.get("user", "postgres"), params["host"], params.get("port", "5432")
    return f"postgresql+asyncpg://{user}@{host}:{port}/{dbname}"


# Seeding -------------------------------------------------------------------


async def seed(url: str, device_count: int) -> list[str]:
    """Migrate and fill the read models; returns the seeded device ids."""
    import migrations
    from infrastructure.database import create_engine
    from projections.tables import devices, fleets, models
    from tests.support.graphql import device_row, fleet_row, model_row

    engine = create_engine(url)
    try:
        await migrations.upgrade_async(engine)
        fleet_rows = [fleet_row(TENANT, f"fleet-{i:02}") for i in range(20)]
        model_rows = [model_row(TENANT, "detector", f"1.{i}.0") for i in range(5)]
        device_rows = [
            device_row(
                TENANT,
                f"SN-{i:06}",
                fleet_id=fleet_rows[i % 20]["id"],
                reported_model_id=model_rows[i % 5]["id"],
                reported_model_version=f"1.{i % 5}.0",
            )
            for i in range(device_count)
        ]
        others = [device_row("other-tenant", f"SN-{i:06}") for i in range(device_count // 10)]
        async with engine.begin() as conn:
            await conn.execute(fleets.insert(), fleet_rows)
            await conn.execute(models.insert(), model_rows)
            for start in range(0, len(device_rows), 5_000):
                await conn.execute(devices.insert(), device_rows[start : start + 5_000])
            await conn.execute(devices.insert(), others)
            await conn.exec_driver_sql("ANALYZE")
        return [str(row["id"]) for row in device_rows]
    finally:
        await engine.dispose()


# Serving (child process) -----------------------------------------------------


def serve(kind: str, port: int, url: str, secret: str) -> None:
    import contextlib

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from bench.graphql_peer import PeerGraphQL
    from commands.auth import Authenticator
    from infrastructure.changes import LocalChangeBus
    from infrastructure.database import create_engine
    from read_api.app import create_graphql_app
    from vigil.stack import settle_heap

    engine = create_engine(url)
    authenticator = Authenticator(secret)
    endpoint: Any
    if kind == "peer":
        endpoint = PeerGraphQL(engine, authenticator)
    else:
        endpoint = create_graphql_app(
            engine=engine,
            repository=None,
            authenticator=authenticator,
            bus=LocalChangeBus(),
            row_cache=kind == "vigil",
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        settle_heap()  # as `vigil api` does once started
        yield
        if hasattr(endpoint, "close"):
            await endpoint.close()
        await engine.dispose()

    app = Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])], lifespan=lifespan)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )


# Orchestration ---------------------------------------------------------------


def measure(
    kind: str, url: str, ids_file: Path, workdir: Path, cleanup: Cleanup, timing: dict[str, Any]
) -> dict[str, Any]:
    def server_args(port: int, secret: str) -> list[str]:
        return [
            *(sys.executable, "-m", "bench.graphql", "--serve", kind, "--port", str(port)),
            *("--db", url, "--secret", secret),
        ]

    log, name = workdir / f"{kind}.log", f"graphql server {kind}"
    with served(server_args, cleanup, tenant=TENANT, log=log, name=name) as server:
        figures: dict[str, Any] = {}
        for mode in ("device", "devices"):
            _log(f"{kind}: {mode}")
            figures[mode] = run_json(
                [
                    *(sys.executable, "-m", "bench.graphql_load", "--port", str(server.port)),
                    *("--mode", mode, "--token", server.token, "--ids", str(ids_file)),
                    *("--connections", str(timing["connections"][mode])),
                    *("--duration", str(timing["duration"]), "--warmup", str(timing["warmup"])),
                    *("--watch", f"server={server.proc.pid}", "--prime"),
                ],
                env=python_env(),
            )
        return figures


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    vigil, peer = results["servers"]["vigil"], results["servers"]["peer"]
    device, devices = vigil["device"], vigil["devices"]
    return {
        "device_rps": device["rps"],
        "device_p99_ms": device["p99_ms"],
        "device_goal_met": device["rps"] >= GOALS["device_rps"]
        and device["p99_ms"] < GOALS["device_p99_ms"],
        "devices_rps": devices["rps"],
        "devices_goal_met": devices["rps"] >= GOALS["devices_rps"],
        "device_vs_peer": round(device["rps"] / max(peer["device"]["rps"], 1e-9), 2),
        "devices_vs_peer": round(devices["rps"] / max(peer["devices"]["rps"], 1e-9), 2),
    }


def run(quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    cleanup = Cleanup()
    timing = {
        "duration": 1.0 if quick else 10.0,
        "warmup": 0.5 if quick else 2.0,
        "connections": {"device": 16, "devices": 16},
    }
    try:
        workdir = make_workdir(cleanup)
        database = BenchDatabase(cleanup)
        url = _pg_url(database.name)
        device_count = 1_000 if quick else 10_000
        _log(f"seeding {device_count} devices into {database.name}")
        ids = asyncio.run(seed(url, device_count))
        ids_file = workdir / "ids.json"
        ids_file.write_text(json.dumps(ids))
        servers = {kind: measure(kind, url, ids_file, workdir, cleanup, timing) for kind in SERVERS}
        results: dict[str, Any] = {
            "mode": "quick" if quick else "full",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "postgres_database": database.name,
            "seeded_devices": device_count,
            "timing": timing,
            "goals": GOALS,
            "servers": servers,
        }
        results["verdict"] = verdict(results)
        results["duration_s"] = round(time.monotonic() - started, 1)
        return results
    finally:
        cleanup.run()


def print_table(results: dict[str, Any]) -> None:
    print("| server | query | req/s | p50 ms | p99 ms | server CPU |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, figures in results["servers"].items():
        for mode, label in (("device", "device(id)"), ("devices", "devices(first: 100)")):
            f = figures[mode]
            cpu = f["server_cpu"].get("server", 0.0)
            print(f"| {kind} | {label} | {f['rps']:,.0f} | {f['p50_ms']} | {f['p99_ms']} | {cpu} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.graphql", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.db, args.secret)
        return 0
    results = run(args.quick)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    _log(f"figures written to {args.output} in {results['duration_s']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
