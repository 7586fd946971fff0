"""``vigil events export`` and ``vigil events import``: the log as NDJSON and back.

The format is described in ``infrastructure.replay.export``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from vigil.cli.common import load_settings

# The replay modules (NATS, SQLAlchemy, rich) are imported inside the commands: every
# `vigil` command, `--help` included, imports this module to build its options.


def export_command(
    file: Annotated[str, typer.Argument(help="NDJSON file to write; '-' for stdout")],
    force: Annotated[bool, typer.Option(help="Overwrite FILE if it exists")] = False,
) -> None:
    """Write every commit, in position order, one JSON line each (no key needed)."""
    from infrastructure.replay.export import export_commits
    from vigil.cli.events import output
    from vigil.cli.events.session import run, session

    settings = load_settings()
    if file != "-" and Path(file).exists() and not force:
        output.fail(f"{file} exists; pass --force to overwrite it", 2)

    async def main() -> None:
        async with session(settings) as s:
            head = await s.store.head_position()
            with output.progress("exporting", head, "commits") as bar, _target(file) as target:
                commits, events = await export_commits(
                    s.store, target, on_commit=lambda c: bar.add(len(c.events), c.position)
                )
                bar.done(head)
        output.note(f"exported {commits:,} commits ({events:,} events) to {file}")

    run(main)


@contextlib.contextmanager
def _target(file: str) -> Iterator[BinaryIO]:
    """``file``, written whole or not at all (a temporary file renamed at the end)."""
    if file == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(file)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An export")],
) -> None:
    """Load an export into an EMPTY event store, checking the whole file first.

    Nothing is written if the store holds any commit or any line is bad.
    """
    from infrastructure.eventstore.setup import ensure_jetstream
    from infrastructure.replay import importing
    from infrastructure.replay.stream import StreamMissing
    from vigil.cli.events import output
    from vigil.cli.events.session import run, session

    settings = load_settings()

    async def main() -> None:
        async with session(settings, need_stream=False) as s:
            try:
                await s.reader.head()
                exists = True
            except StreamMissing:
                exists = False
            if exists:
                await importing.ensure_empty(s.store)  # fail fast, before reading the file
            size = file.stat().st_size
            with output.progress("checking", size, "bytes") as bar:
                summary = importing.check_file(
                    file, on_line=lambda n: bar.add(0, bar.completed + n)
                )
                bar.done(size)
            if not exists:
                await ensure_jetstream(s.nc.jetstream(), s.config)
            with output.progress("importing", summary.commits, "commits") as bar:
                await importing.write_commits(
                    s.store, file, summary, on_commit=lambda c: bar.add(len(c.events))
                )
                bar.done()
        output.note(
            f"imported {summary.commits:,} commits ({summary.events:,} events, "
            f"{len(summary.versions):,} aggregates) into {s.config.stream}"
        )

    run(main)
