"""Running the stack: the embedded nats-server (when no VIGIL_NATS_URL) and the HTTP server.

Whatever ``vigil up`` starts it also stops, on Ctrl-C, SIGTERM or an error:
uvicorn turns the signal into a graceful shutdown, the lifespan closes the
clients, and the ``finally`` below stops nats-server. The child is also tied to
our life with PR_SET_PDEATHSIG, so even ``kill -9`` of vigil leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Iterator

import uvicorn

from infrastructure.natsd import NatsServer
from vigil.app import create_app
from vigil.bootstrap import Services, open_services
from vigil.config import ConfigError, Settings

log = logging.getLogger("vigil")


class _Server(uvicorn.Server):
    """uvicorn, minus its habit of re-raising SIGINT/SIGTERM after shutdown.

    uvicorn re-raises the signal it caught once it has stopped, which kills the
    process before our ``finally`` can stop nats-server cleanly. We route the
    signals to ``should_exit`` ourselves and exit 0 after a full shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self._request_exit, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        settle_heap()

    def _request_exit(self, sig: signal.Signals) -> None:
        log.info("%s received, shutting down", sig.name)
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def settle_heap() -> None:
    """Call once start-up is done: tune the garbage collector for serving.

    Everything built at start-up lives as long as the process: move it out of
    the collector's sight, and collect the young generation less eagerly.
    Full collections over those objects were 50-75 ms pauses, the p99 of the
    command API (see bench/results/append.json).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


async def _serve_until_signal(settings: Settings, nats_url: str, whole_stack: bool) -> None:
    server = _Server(_uvicorn_config(settings, nats_url, whole_stack))
    # Handle signals for the whole run, including nats-server start-up and shutdown.
    with server.capture_signals():
        await server.serve()


def _uvicorn_config(settings: Settings, nats_url: str, whole_stack: bool) -> uvicorn.Config:
    def open_all() -> Awaitable[Services]:
        return open_services(settings, nats_url, run_projector=whole_stack, migrate=whole_stack)

    return uvicorn.Config(
        create_app(open_all),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


async def serve(settings: Settings, *, whole_stack: bool) -> None:
    """Serve until a signal arrives; start and stop nats-server if embedded.

    ``whole_stack`` (``vigil up``) also migrates the read-model database and
    runs the projector in this process; without it (``vigil api``) those are
    ``vigil migrate``'s and ``vigil projector``'s jobs.
    """
    if settings.nats_url is not None:
        await _serve_until_signal(settings, settings.nats_url, whole_stack)
        return
    if not whole_stack:
        raise ConfigError("VIGIL_NATS_URL is not set; use `vigil up` for the embedded stack")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = NatsServer(
        store_dir=settings.data_dir / "jetstream",
        sync_always=settings.nats_sync == "always",
    )
    await server.start()
    log.info("embedded nats-server %s with JetStream under %s", server.url, server.store_dir)
    try:
        await _serve_until_signal(settings, server.url, whole_stack)
    finally:
        await server.stop()
