"""The write-path benchmark: ``python -m bench.append [--quick] [--output FILE]``.

Measured in one run, each Vigil figure next to a peer doing the same work:

(a) events/s appended through the ``EventStore`` port (``JetStreamEventStore``)
    with 64 commits in flight: real ``Device`` events, mapped with Vigil's
    msgpack ``Mapper``, one event per commit, each with an idempotency key.
    Peer: raw nats-py ``js.publish`` of a payload of the same size, 64 in flight.
(b) commands/s and latency through the HTTP command API (``vigil api`` in its
    own process) driven by ``bench.loadgen`` (another process) with 64
    keep-alive clients, each sending ``RaiseAnomaly`` to its own devices.
    Peer: a plain Starlette JSON endpoint under the same uvicorn settings,
    driven by the same load generator (and by ``wrk`` too, when installed, to
    show the load generator is not the bottleneck).
(c) the same workload as (a) on the ``eventsourcing`` library's own
    Application with PostgreSQL (``bench.peer_eventsourcing``): sequential and
    with threads in flight; Vigil's ratio is taken against the peer's best.

Both durability modes are measured, each side at the same guarantee:

* ``relaxed``: acknowledged before fsync. JetStream's default (writes reach the
  OS at once, fsync every 2 minutes) against PostgreSQL ``synchronous_commit=off``.
* ``durable``: fsync before the acknowledgement. JetStream ``sync_interval:
  always`` against PostgreSQL ``synchronous_commit=on``.

In a full run each figure is the median of three windows (each window's CPU
use and the machine's other load are kept in the JSON): the machine may be
shared, and one window can land on someone else's burst.

Every nats-server, API server and database it creates is private to the run
and removed at the end, also on Ctrl-C or failure. Figures go to
``bench/results/append.json``; ``--markdown FILE`` prints README's table from
such a file. There are no pass/fail exits: goals are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.append_report import markdown, print_table
from bench.common import (
    BIN,
    BenchDatabase,
    Cleanup,
    NatsProcess,
    free_port,
    machine_info,
    make_workdir,
    python_env,
    run_json,
    spawn,
    stop_process,
    wait_for_port,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "append.json"

GOALS = {
    "append_events_per_s": 15_000,
    "http_commands_per_s": 3_000,
    "http_p99_ms": 50.0,
    "vigil_vs_peer": 5.0,
}

MODES = {
    "relaxed": {
        "label": "ack before fsync",
        "nats": "JetStream default sync (fsync every 2 min)",
        "postgres": "synchronous_commit=off",
        "sync_always": False,
        "synchronous_commit": False,
    },
    "durable": {
        "label": "fsync before ack",
        "nats": "JetStream sync_interval: always",
        "postgres": "synchronous_commit=on",
        "sync_always": True,
        "synchronous_commit": True,
    },
}


@dataclass(frozen=True)
class Sizes:
    in_flight: int
    connections: int
    append_warmup: float
    append_duration: float
    devices_per_worker: int
    http_warmup: float
    http_duration: float
    register_per_connection: int
    peer_devices: int
    peer_events: int
    peer_threads: tuple[int, ...]
    peer_duration: float
    repeats: int  # windows per figure; the median one is reported


FULL = Sizes(
    in_flight=64,
    connections=64,
    append_warmup=1.0,
    append_duration=3.0,
    devices_per_worker=4,
    http_warmup=2.0,
    http_duration=6.0,
    register_per_connection=4,
    peer_devices=256,
    peer_events=4000,
    peer_threads=(1, 8, 64),
    peer_duration=8.0,
    repeats=3,
)
QUICK = Sizes(
    in_flight=64,
    connections=64,
    append_warmup=0.2,
    append_duration=0.5,
    devices_per_worker=1,
    http_warmup=0.3,
    http_duration=1.0,
    register_per_connection=1,
    peer_devices=64,
    peer_events=128,
    peer_threads=(1, 64),
    peer_duration=2.0,
    repeats=1,
)


# -- the orchestrator -----------------------------------------------------------------


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _worker_args(kind: str, nats: NatsProcess, sizes: Sizes, variant: str = "port") -> list[str]:
    return _python(
        "-m",
        "bench.append_workers",
        "--worker",
        kind,
        "--variant",
        variant,
        "--nats-url",
        nats.url,
        "--nats-pid",
        str(nats.proc.pid),
        "--in-flight",
        str(sizes.in_flight),
        "--devices-per-worker",
        str(sizes.devices_per_worker),
        "--warmup",
        str(sizes.append_warmup),
        "--duration",
        str(sizes.append_duration),
    )


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median ``key`` (latencies stay those of that run), with every value.

    The machine may be shared: a single window can land on someone else's
    burst. The median of a few is steadier than any one, and unlike the best
    it does not flatter.
    """
    ordered = sorted(runs, key=lambda run: float(run[key]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["repeats"] = [run[key] for run in runs]
    return chosen


def _repeat(sizes: Sizes, key: str, args: list[str], env: dict[str, str] | None = None) -> Any:
    return median_run([run_json(args, env=env) for _ in range(sizes.repeats)], key)


def _measure_http(
    nats: NatsProcess, sizes: Sizes, workdir: Path, mode: str, cleanup: Cleanup
) -> dict[str, Any]:
    """(b): ``vigil api`` in one process, the load generator in another."""
    from commands.auth import issue_token

    port = free_port()
    secret = secrets.token_urlsafe(48)
    env = python_env(
        {
            "VIGIL_NATS_URL": nats.url,
            "VIGIL_JWT_SECRET": secret,
            "VIGIL_HOST": "127.0.0.1",
            "VIGIL_PORT": str(port),
            "VIGIL_DATA_DIR": str(workdir / f"api-{mode}"),
            "VIGIL_LOG_LEVEL": "warning",
        }
    )
    log = workdir / f"api-{mode}.log"
    api = spawn([str(BIN / "vigil"), "api"], cleanup, env=env, log=log, name="vigil api")
    try:
        try:
            wait_for_port(port, api, timeout=60)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{log.read_text(errors='replace')[-3000:]}") from err
        token = issue_token(secret, subject="bench", tenant="bench", role="admin", ttl_seconds=3600)
        ids_file = workdir / f"devices-{mode}.json"
        common = ["--port", str(port), "--connections", str(sizes.connections), "--token", token]
        register = run_json(
            _python(
                "-m",
                "bench.loadgen",
                *common,
                "--mode",
                "register",
                "--per-connection",
                str(sizes.register_per_connection),
                "--ids-out",
                str(ids_file),
            ),
            env=python_env(),
        )
        if register.get("ids", 0) < sizes.connections:
            raise RuntimeError(f"registering devices failed: {register}\n{_tail(log)}")
        anomaly = _repeat(
            sizes,
            "rps",
            _python(
                "-m",
                "bench.loadgen",
                *common,
                "--mode",
                "anomaly",
                "--ids",
                str(ids_file),
                "--warmup",
                str(sizes.http_warmup),
                "--duration",
                str(sizes.http_duration),
                "--watch",
                f"vigil-api={api.pid},nats-server={nats.proc.pid}",
            ),
            env=python_env(),
        )
        if anomaly["ok"] == 0:
            raise RuntimeError(f"no command succeeded: {anomaly}\n{_tail(log)}")
        return {
            "register": _trim(register),
            "raise_anomaly": _trim(anomaly),
            "commands_per_s": anomaly["rps"],
            "p50_ms": anomaly["p50_ms"],
            "p99_ms": anomaly["p99_ms"],
        }
    finally:
        stop_process(api)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def _trim(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("mode",)}


def _measure_starlette(sizes: Sizes, workdir: Path, cleanup: Cleanup) -> dict[str, Any]:
    """Peer of (b): plain Starlette JSON under uvicorn, same client (and wrk if present)."""
    import shutil

    port = free_port()
    server = spawn(
        _python("-m", "bench.loadgen", "--serve-peer", "--port", str(port)),
        cleanup,
        env=python_env(),
        log=workdir / "starlette.log",
        name="starlette peer",
    )
    try:
        wait_for_port(port, server, timeout=30)
        result = _repeat(
            sizes,
            "rps",
            _python(
                "-m",
                "bench.loadgen",
                "--port",
                str(port),
                "--mode",
                "echo",
                "--connections",
                str(sizes.connections),
                "--warmup",
                str(sizes.http_warmup),
                "--duration",
                str(sizes.http_duration),
                "--watch",
                f"starlette={server.pid}",
            ),
            env=python_env(),
        )
        out: dict[str, Any] = {"loadgen": _trim(result), "requests_per_s": result["rps"]}
        wrk = shutil.which("wrk")
        if wrk and sizes is FULL:
            out["wrk"] = _run_wrk(wrk, port, sizes, workdir)
        return out
    finally:
        stop_process(server)


def _run_wrk(wrk: str, port: int, sizes: Sizes, workdir: Path) -> dict[str, Any]:
    import subprocess

    script = workdir / "echo.lua"
    body = json.dumps(
        {
            "device_id": "00000000-0000-0000-0000-000000000000",
            "kind": "thermal",
            "severity": "warning",
            "detail": "npu at 91C, seq 1",
        }
    )
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Idempotency-Key"] = "wrk"\n'
    )
    proc = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{sizes.connections}",
            f"-d{int(sizes.http_duration)}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/echo",
        ],
        capture_output=True,
        text=True,
        timeout=sizes.http_duration + 30,
        check=False,
    )
    out: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            out["requests_per_s"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            out[f"p{parts[0][:-1]}_ms"] = _wrk_ms(parts[1])
    return out


def _wrk_ms(text: str) -> float:
    for suffix, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(suffix):
            return round(float(text[: -len(suffix)]) * scale, 3)
    return float(text)


def _measure_peer(db: BenchDatabase, sizes: Sizes, synchronous_commit: bool) -> dict[str, Any]:
    """(c): the eventsourcing library's Application on PostgreSQL, in its own process."""
    db.set_synchronous_commit(synchronous_commit)
    runs: dict[str, Any] = {}
    for threads in sizes.peer_threads:
        name = "sequential" if threads == 1 else f"threads_{threads}"
        runs[name] = run_json(
            _python(
                "-m",
                "bench.peer_eventsourcing",
                "--db",
                db.name,
                "--devices",
                str(max(sizes.peer_devices, threads)),
                "--events",
                str(sizes.peer_events),
                "--threads",
                str(threads),
                "--duration",
                str(sizes.peer_duration),
            ),
            env=python_env(),
        )
    best = max(runs, key=lambda n: runs[n]["events_per_s"])
    return {"runs": runs, "best": best, "events_per_s": runs[best]["events_per_s"]}


def orchestrate(sizes: Sizes, quick: bool) -> dict[str, Any]:
    cleanup = Cleanup()
    started = time.perf_counter()
    try:
        workdir = make_workdir(cleanup)
        results: dict[str, Any] = {
            "benchmark": "append",
            "mode": "quick" if quick else "full",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {**machine_info(), "load_before": _loadavg()},
            "settings": asdict(sizes),
            "goals": GOALS,
            "durability": {},
        }
        _log("(b) peer: plain Starlette JSON endpoint")
        results["starlette"] = _measure_starlette(sizes, workdir, cleanup)

        for mode, spec in MODES.items():
            entry: dict[str, Any] = {k: v for k, v in spec.items() if isinstance(v, str)}
            nats = NatsProcess(workdir, sync_always=bool(spec["sync_always"]), cleanup=cleanup)
            try:
                _log(f"[{mode}] (a) peer: raw js.publish, {sizes.in_flight} in flight")
                entry["raw_publish"] = _repeat(
                    sizes, "events_per_s", _worker_args("publish", nats, sizes)
                )
                _log(f"[{mode}] (a) EventStore.append, {sizes.in_flight} in flight")
                entry["append"] = _repeat(
                    sizes, "events_per_s", _worker_args("append", nats, sizes, "port")
                )
                _log(f"[{mode}] (a) decide + map + append, {sizes.in_flight} in flight")
                entry["decide_append"] = _repeat(
                    sizes, "events_per_s", _worker_args("append", nats, sizes, "command")
                )
                _log(f"[{mode}] (b) HTTP command API, {sizes.connections} clients")
                entry["http"] = _measure_http(nats, sizes, workdir, mode, cleanup)
            finally:
                nats.stop()
            results["durability"][mode] = entry

        db = BenchDatabase(cleanup)
        results["postgres_database"] = db.name  # dropped at the end of the run
        for mode, spec in MODES.items():
            _log(f"[{mode}] (c) peer: eventsourcing + PostgreSQL {spec['postgres']}")
            entry = results["durability"][mode]
            entry["peer"] = _measure_peer(db, sizes, bool(spec["synchronous_commit"]))
            entry["verdict"] = _verdict(entry)
    finally:
        cleanup.run()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_after"] = _loadavg()
    results["machine"]["other_load_max"] = max(_other_loads(results), default=0.0)
    return results


def _other_loads(results: dict[str, Any]) -> list[float]:
    """Cores busy with something other than the benchmark, per measured window.

    This machine is shared; a window in which other work ran measured less than
    the software can do, and the table says so.
    """
    windows = [results["starlette"]["loadgen"]]
    for entry in results["durability"].values():
        windows += [entry["raw_publish"], entry["append"], entry["decide_append"]]
        windows.append(entry["http"]["raise_anomaly"])
    loads = []
    for window in windows:
        cpu = dict(window.get("server_cpu") or {})
        machine = cpu.pop("machine", None)
        cpu.pop("steal", None)
        if machine is not None:
            other = machine - window.get("client_cpu", 0.0) - sum(cpu.values())
            window["other_load"] = round(max(0.0, other), 2)
            loads.append(window["other_load"])
    return loads


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def _verdict(entry: dict[str, Any]) -> dict[str, Any]:
    append = entry["append"]["events_per_s"]
    decide = entry["decide_append"]["events_per_s"]
    http = entry["http"]
    peer = entry["peer"]["events_per_s"]
    ratio = round(decide / peer, 2) if peer else 0.0
    return {
        "append_events_per_s": append >= GOALS["append_events_per_s"],
        "http_commands_per_s": http["commands_per_s"] >= GOALS["http_commands_per_s"],
        "http_p99_ms": http["p99_ms"] < GOALS["http_p99_ms"],
        "vigil_vs_peer": ratio >= GOALS["vigil_vs_peer"],
        "vigil_vs_peer_ratio": ratio,
        "http_vs_peer_ratio": round(http["commands_per_s"] / peer, 2) if peer else 0.0,
    }


# -- entry point ----------------------------------------------------------------------


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.append", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts, runs in seconds")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--markdown", type=Path, help="print README's table from a results file")
    args = parser.parse_args(argv)

    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0

    signal.signal(signal.SIGTERM, _terminate)
    try:
        results = orchestrate(QUICK if args.quick else FULL, args.quick)
    except KeyboardInterrupt:
        _log("interrupted; every process and database it started is stopped")
        return 130
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    _log(f"figures written to {args.output} in {results['duration_s']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
