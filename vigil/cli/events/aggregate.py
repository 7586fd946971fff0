"""``vigil aggregate show``: one aggregate rebuilt from its events, as of a version or time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from vigil.cli.common import load_settings

if TYPE_CHECKING:
    from infrastructure.replay.stream import StreamReader

# The replay modules (NATS, SQLAlchemy, rich) are imported inside the command: every
# `vigil` command, `--help` included, imports this module to build its options.


def show_command(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="device, fleet or model")],
    id_: Annotated[str, typer.Argument(metavar="ID", help="Aggregate id (UUID)")],
    version: Annotated[int | None, typer.Option(min=1, help="As of this version")] = None,
    at: Annotated[
        str | None, typer.Option(help="As of this ISO 8601 time (no offset: UTC)")
    ] = None,
    tenant_: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Owner (found by itself if unique)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rebuild one aggregate from the event log and print its state and history.

    With --version and/or --at, as it was then (whichever comes first).
    """
    from infrastructure.eventstore.port import StreamRef
    from infrastructure.replay.describe import to_json
    from infrastructure.replay.history import aggregate_as_of
    from vigil.cli.events import output
    from vigil.cli.events.session import aggregate_id, aggregate_type, moment, run, session, tenant

    settings = load_settings()

    async def main() -> None:
        kind, id__ = aggregate_type(type_), aggregate_id(id_)
        when = None if at is None else moment(at)
        owner = None if tenant_ is None else tenant(tenant_)
        async with session(settings) as s:
            ref = StreamRef(await owner_of(s.reader, kind, id__, owner), kind, id__)
            found = await aggregate_as_of(s.store, s.mapper, ref, version=version, at=when)
        if json_output:
            output.echo(to_json(found.as_json()))
        elif found.aggregate is None:
            output.fail(
                f"{kind} {id__} did not exist yet at {when.isoformat() if when else '?'}", 1
            )
        else:
            output.show_aggregate(found)

    run(main)


async def owner_of(reader: StreamReader, kind: str, id_: UUID, wanted: str | None) -> str:
    """The tenant holding ``kind`` ``id_``: ``wanted`` if it does, else the only one that does."""
    from infrastructure.replay.stream import subject_filter
    from vigil.cli.events.session import UsageError

    subjects = await reader.subjects(subject_filter(reader.prefix, None, kind, id_))
    tenants = sorted(subject.split(".")[-3] for subject in subjects)
    if wanted is not None and wanted in tenants:
        return wanted
    if wanted is None and len(tenants) == 1:
        return tenants[0]
    if wanted is None and not tenants:
        raise UsageError(f"no {kind} {id_} in the event log ({reader.config.stream})")
    listed = ", ".join(tenants)
    if wanted is None:
        raise UsageError(f"{kind} {id_} exists in tenants {listed}: pass --tenant to choose one")
    if not tenants:
        raise UsageError(f"no {kind} {id_} in tenant {wanted!r}, nor in any other tenant")
    raise UsageError(f"no {kind} {id_} in tenant {wanted!r}; tenant(s) {listed} have one")
