"""``vigil --help`` and every command start without loading what they may never use.

Each check runs a fresh interpreter, so modules imported by other tests don't count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from projections import catalog, service
from vigil.cli import projections as projections_cli

REPO = Path(__file__).resolve().parents[2]

HEAVY = (
    "sqlalchemy",
    "nats",
    "asyncpg",
    "projections",
    "infrastructure.replay",
    "httpx",
    "uvicorn",
    "starlette",
)


def heavy_modules_loaded_by(code: str) -> list[str]:
    """Which of ``HEAVY`` (or their sub-modules) are loaded after running ``code``."""
    probe = f"""
import json, sys
{code}
heavy = {HEAVY!r}
print(json.dumps(sorted(
    name for name in sys.modules if any(name == h or name.startswith(h + ".") for h in heavy)
)))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_module():
    assert heavy_modules_loaded_by("import vigil.cli") == []


def test_rendering_help_loads_no_heavy_module():
    help_for_every_group = """
from typer.testing import CliRunner
from vigil.cli import app
for args in ([], ["projections"], ["projections", "rebuild"], ["events"], ["aggregate"]):
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
"""
    assert heavy_modules_loaded_by(help_for_every_group) == []


def test_help_names_the_projections_and_batch_size_the_projector_has():
    # The CLI keeps its own copy so that --help need not import the projections.
    assert tuple(catalog.PROJECTIONS) == projections_cli.PROJECTION_NAMES
    assert projections_cli.DEFAULT_BATCH == service.DEFAULT_BATCH
