"""``vigil``: one console script for the whole system.

Each sub-module registers its own commands, so the CLI grows by adding a
module here rather than by growing one file.
"""

from __future__ import annotations

import typer

from vigil.cli import demo, events, projections, stack

app = typer.Typer(
    name="vigil",
    help="Vigil: event-sourced control plane for fleets of edge AI devices.",
    no_args_is_help=True,
    add_completion=False,
)
stack.register(app)
projections.register(app)
events.register(app)
demo.register(app)


def main() -> None:
    app()
