"""``vigil events tail|export|import|verify`` and ``vigil aggregate show``: replay tooling.

The work is done in ``infrastructure.replay``; these modules parse options,
find NATS (``VIGIL_NATS_URL``, or the nats-server ``vigil up`` runs under the
same data directory), draw progress on stderr and print results on stdout.
Exit codes: 0 fine, 1 something is wrong or the work failed, 2 bad usage.
"""

from __future__ import annotations

import typer

from vigil.cli.events.aggregate import show_command
from vigil.cli.events.dump import export_command, import_command
from vigil.cli.events.tail import tail_command
from vigil.cli.events.verify import verify_command


def register(app: typer.Typer) -> None:
    """Add the ``events`` and ``aggregate`` command groups to ``app``."""
    events = typer.Typer(
        help="Tail, export, import and verify the event log.", no_args_is_help=True
    )
    events.command("tail")(tail_command)
    events.command("export")(export_command)
    events.command("import")(import_command)
    events.command("verify")(verify_command)
    aggregate = typer.Typer(
        help="Inspect one aggregate as the event log has it.", no_args_is_help=True
    )
    aggregate.command("show")(show_command)
    app.add_typer(events, name="events")
    app.add_typer(aggregate, name="aggregate")
