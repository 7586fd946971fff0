"""``python -m projections [OPTIONS]``: the same as ``vigil projector [OPTIONS]``."""

from __future__ import annotations

import typer

from vigil.cli.projections import projector

typer.run(projector)
