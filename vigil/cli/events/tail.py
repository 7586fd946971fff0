"""``vigil events tail``: print events as they are appended."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.cli.common import load_settings

if TYPE_CHECKING:
    from infrastructure.replay.tail import EventFilter

# The replay modules (NATS, SQLAlchemy, rich) are imported inside the command: every
# `vigil` command, `--help` included, imports this module to build its options.


def event_filter(
    where: str | None,
    tenant_: str | None = None,
    type_: str | None = None,
    id_: str | None = None,
    events: list[str] | None = None,
) -> EventFilter:
    """The filter from ``TENANT[/TYPE[/ID]]`` (``*`` or empty: any) and the options."""
    from infrastructure.replay.tail import EventFilter
    from vigil.cli.events.session import UsageError, aggregate_id, aggregate_type, tenant

    parts: list[str | None] = [p if p not in ("", "*") else None for p in (where or "").split("/")]
    if len(parts) > 3:
        raise UsageError(f"filter {where!r} must look like TENANT[/TYPE[/ID]]")
    parts += [None] * (3 - len(parts))
    merged: list[str | None] = []
    for name, positional, option in zip(
        ("tenant", "type", "id"), parts, (tenant_, type_, id_), strict=True
    ):
        if positional and option and positional != option:
            raise UsageError(f"{name} given twice: {positional!r} and {option!r}")
        merged.append(option or positional)
    return EventFilter(
        tenant(merged[0]) if merged[0] else None,
        aggregate_type(merged[1]) if merged[1] else None,
        aggregate_id(merged[2]) if merged[2] else None,
        tuple(events or ()),
    )


def tail_command(
    where: Annotated[
        str | None,
        typer.Argument(
            metavar="FILTER", help="TENANT, TENANT/TYPE or TENANT/TYPE/ID; '*' matches any part"
        ),
    ] = None,
    tenant_: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant id")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="device, fleet or model")] = None,
    id_: Annotated[
        str | None, typer.Option("--id", "--aggregate", help="Aggregate id (UUID)")
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", "-e", help="Event type (Registered, Device.Registered); repeatable"
        ),
    ] = None,
    from_position: Annotated[
        int | None, typer.Option("--from", min=1, help="Start at this position")
    ] = None,
    last: Annotated[
        int | None, typer.Option(min=0, help="Start with the last N matching events")
    ] = None,
    follow: Annotated[bool, typer.Option(help="Keep following new events")] = True,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after N events")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Print events as they are appended: one line per event, or NDJSON with --json.

    Starts at the head (new events only) unless --from or --last says otherwise;
    --no-follow stops at the head as it was when the command started.
    """
    from infrastructure.replay.describe import to_json
    from infrastructure.replay.tail import start_of_last, tail
    from vigil.cli.events import output
    from vigil.cli.events.session import UsageError, run, session

    settings = load_settings()

    async def main() -> None:
        if from_position is not None and last is not None:
            raise UsageError("--from and --last cannot be used together")
        wanted = event_filter(where, tenant_, type_, id_, event)
        async with session(settings) as s:
            head = await s.reader.head()
            start, skip = head + 1, 0
            if from_position is not None:
                start = from_position
            elif last is not None:
                start, skip = await start_of_last(s.reader, wanted, last, head)
            verb, end = ("following", " (Ctrl-C to stop)") if follow else ("reading", f" to {head}")
            output.note(f"{verb} {s.config.stream} from position {start}{end}")
            feed = tail(
                s.reader,
                s.mapper,
                wanted,
                start=start,
                skip=skip,
                until=None if follow else head,
                limit=limit,
            )
            async with contextlib.aclosing(feed) as items:
                async for item in items:
                    line = to_json(item.as_json()) if json_output else output.event_line(item)
                    output.echo(line)

    run(main)
