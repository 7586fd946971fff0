"""``vigil migrate``, ``vigil projector`` and ``vigil projections status|rebuild``.

``vigil projector`` runs the projector alone (for scale-out, or beside
``vigil api``); any number may run, one applies and the others wait as
standbys. ``status`` and ``rebuild`` work against a running stack: they find
NATS through ``VIGIL_NATS_URL`` or the embedded server of ``vigil up``.
"""

from __future__ import annotations

import gc
import logging
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.cli.common import load_settings, setup_logging

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncEngine

    from infrastructure.changes import ChangeBus
    from projections.service import Projector
    from vigil.config import Settings

# The projections, SQLAlchemy, NATS, uvloop and rich are imported inside the commands:
# every `vigil` command, `--help` included, imports this module to build its options.
# The help needs two facts up front, copied here (tests/unit/test_cli_startup.py checks
# them against projections.catalog.PROJECTIONS and projections.service.DEFAULT_BATCH).
PROJECTION_NAMES = ("devices", "fleets", "models", "timeline")
DEFAULT_BATCH = 10_000

log = logging.getLogger("vigil.projector")

projections_app = typer.Typer(
    name="projections",
    help="Read-model projections: where they stand, and rebuilding one without downtime.",
    no_args_is_help=True,
)


def build_projector(
    settings: Settings,
    engine: AsyncEngine,
    nats_url: str,
    *,
    bus: ChangeBus | None = None,
    registry: CollectorRegistry | None = None,
    names: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> Projector:
    """The projector as configured by ``settings`` (stream, mapper), on ``engine``."""
    from infrastructure.eventstore.codec import build_mapper
    from projections.service import Projector
    from vigil.bootstrap import jetstream_config

    return Projector(
        engine,
        nats_url,
        jetstream_config(settings),
        build_mapper(settings.compression, settings.cipher_key),
        bus=bus,
        registry=registry,
        names=names,
        batch_size=batch_size,
    )


def tune_for_throughput() -> None:
    """Fewer garbage collections: a projector allocates and frees objects by the million.

    With the default thresholds CPython collects every 700 allocations and,
    with a few hundred thousand long-lived rows cached, spends more time
    collecting than projecting. At 100,000 a catch-up of a million events
    still paid about 15 collections (7% of its CPU); at a million it pays
    almost none, for a young generation of at most a million objects. Only
    for a process that runs the projector alone; the lead decides for
    ``vigil up``.
    """
    gc.set_threshold(1_000_000, 50, 1000)
    gc.freeze()


def migrate() -> None:
    """Create or upgrade the read-model tables (PostgreSQL or SQLite) to the latest schema."""
    from sqlalchemy.engine import make_url

    import migrations
    from infrastructure.database import database_url

    settings = load_settings()
    url = database_url(settings)
    migrations.upgrade(url)
    typer.echo(
        f"read models are up to date in {make_url(url).render_as_string(hide_password=True)}"
    )


def projector(
    batch_size: Annotated[
        int, typer.Option(min=1, help="Most events per transaction")
    ] = DEFAULT_BATCH,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these projections (repeatable)")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port")
    ] = None,
) -> None:
    """Run the projector alone: keep the read models up to date until SIGINT/SIGTERM."""
    import uvloop

    from projections import catalog

    settings = load_settings()
    setup_logging(settings)
    unknown = sorted(set(only or []) - set(catalog.PROJECTIONS))
    if unknown:
        _fail(
            f"unknown projection(s) {', '.join(unknown)}; known: {', '.join(catalog.PROJECTIONS)}"
        )
    nats_url = _nats_url(settings)
    tune_for_throughput()
    uvloop.run(_run_projector(settings, nats_url, batch_size, only, metrics_port))


async def _run_projector(
    settings: Settings, nats_url: str, batch_size: int, only: list[str] | None, port: int | None
) -> None:
    import asyncio

    from prometheus_client import start_http_server

    import migrations
    from infrastructure.database import create_engine, database_url

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = create_engine(database_url(settings))
    try:
        await migrations.upgrade_async(engine)
        runner = build_projector(settings, engine, nats_url, names=only, batch_size=batch_size)
        if port is not None:
            start_http_server(port, registry=runner.metrics.registry)
        log.info("projector started: %s", ", ".join(runner.names))
        await runner.run(stop)
    finally:
        await engine.dispose()
    log.info("projector stopped")


@projections_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per projection")] = False,
) -> None:
    """Position, lag behind the event stream and dead letters of every projection."""
    import orjson
    import uvloop
    from rich.console import Console
    from rich.table import Table

    settings = load_settings()
    rows = uvloop.run(_status(settings))
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    table = Table("projection", "position", "lag", "dead letters", "updated")
    for row in rows:
        lag = "?" if row["lag"] is None else f"{row['lag']:,}"
        name = row["name"] + (" (rebuilding)" if row["rebuilding"] else "")
        updated = row["updated_at"].isoformat(timespec="seconds") if row["updated_at"] else "-"
        table.add_row(name, f"{row['position']:,}", lag, str(row["dead_letters"]), updated)
    Console().print(table)


async def _status(settings: Settings) -> list[dict[str, Any]]:
    from infrastructure.database import create_engine, database_url
    from infrastructure.replay.connect import resolve_nats_url
    from projections.status import read_status, stream_head
    from vigil.bootstrap import jetstream_config

    head: int | None = None
    try:
        url, _ = resolve_nats_url(settings.nats_url, settings.data_dir)
        head = await stream_head(url, jetstream_config(settings))
    except Exception as err:  # the table is still worth showing without the lag
        typer.secho(f"lag unknown: cannot read the event stream ({err})", fg="yellow", err=True)
    engine = create_engine(database_url(settings))
    try:
        statuses = await read_status(engine, head)
    finally:
        await engine.dispose()
    return [
        {
            "name": s.name,
            "position": s.position,
            "lag": s.lag,
            "dead_letters": s.dead_letters,
            "updated_at": s.updated_at,
            "rebuilding": s.rebuilding,
        }
        for s in statuses
    ]


@projections_app.command("rebuild")
def rebuild(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(PROJECTION_NAMES)}")],
    batch_size: Annotated[
        int, typer.Option(min=1, help="Most events per transaction")
    ] = DEFAULT_BATCH,
) -> None:
    """Rebuild NAME from the first event into new tables, then swap them in atomically.

    The current tables keep answering queries (and the running projector keeps
    applying to them) until the swap.
    """
    import uvloop

    from projections import catalog

    settings = load_settings()
    setup_logging(settings)
    if name not in catalog.PROJECTIONS:
        _fail(f"unknown projection {name!r}; known: {', '.join(catalog.PROJECTIONS)}")
    nats_url = _nats_url(settings)
    tune_for_throughput()
    result = uvloop.run(_rebuild(settings, nats_url, name, batch_size))
    typer.echo(
        f"{name} rebuilt and swapped in at position {result.position:,} "
        f"({result.applied_in_swap:,} commits applied during the swap, "
        f"{result.dead_letters} dead letters)"
    )


async def _rebuild(settings: Settings, nats_url: str, name: str, batch_size: int) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    import migrations
    from infrastructure.database import create_engine, database_url
    from infrastructure.eventstore.codec import build_mapper
    from projections.rebuild import Rebuild
    from vigil.bootstrap import jetstream_config

    engine = create_engine(database_url(settings))
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    try:
        await migrations.upgrade_async(engine)
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(f"rebuilding {name}", total=None)

            def progress(position: int, head: int) -> None:
                bar.update(task, completed=position, total=max(head, position))

            return await Rebuild(
                engine,
                nats_url,
                jetstream_config(settings),
                name,
                build_mapper(settings.compression, settings.cipher_key),
                batch_size=batch_size,
                progress=progress,
            ).run()
    finally:
        await engine.dispose()


def _nats_url(settings: Settings) -> str:
    from infrastructure.replay.connect import NatsNotFound, resolve_nats_url

    try:
        return resolve_nats_url(settings.nats_url, settings.data_dir)[0]
    except NatsNotFound as err:
        _fail(str(err))
        raise  # unreachable: _fail exits


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
    app.command()(projector)
    app.add_typer(projections_app)
