"""``vigil events verify``: is the event log whole, and do the read models agree with it?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.cli.common import load_settings

if TYPE_CHECKING:
    from infrastructure.replay.readmodels import ReadModelRows
    from vigil.config import Settings

# The replay modules (NATS, SQLAlchemy, rich) are imported inside the command: every
# `vigil` command, `--help` included, imports this module to build its options.


def verify_command(
    skip_read_models: Annotated[
        bool, typer.Option("--skip-read-models", help="Check the event log only")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Check every commit decodes, versions run 1, 2, 3... and read models match the log.

    Decoding goes through the mapper, so VIGIL_EVENT_COMPRESSION and
    VIGIL_CIPHER_KEY must be set as the writers had them. Exits 1 on any problem.
    """
    from infrastructure.replay.readmodels import compare
    from infrastructure.replay.verify import verify_log
    from vigil.cli.events import output
    from vigil.cli.events.session import run, session

    settings = load_settings()

    async def main() -> None:
        # Read models first: the log is then read at least as far as they have got.
        rows = None if skip_read_models else await _read_models(settings)
        async with session(settings) as s:
            head = await s.reader.head()
            with output.progress("verifying", head, "commits") as bar:
                report = await verify_log(
                    s.reader.read(until=head),
                    s.config.subject_prefix,
                    s.mapper,
                    on_commit=lambda raw: bar.add(0, raw.position),
                )
                bar.done(head)
        problems = report.problems + ([] if rows is None else compare(report, rows))
        output.show_report(report, problems, read_models=rows is not None, as_json=json_output)
        if problems:
            raise typer.Exit(1)

    run(main)


def _database_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    from infrastructure.database import database_url
    from vigil.cli.events.session import UsageError

    url = database_url(settings)
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and not Path(database).exists():
        raise UsageError(
            f"no read-model database at {database} (has the projector run? "
            "is VIGIL_DATABASE_URL set?); pass --skip-read-models to check the log only"
        )
    return url


async def _read_models(settings: Settings) -> ReadModelRows:
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    from infrastructure.database import create_engine
    from infrastructure.replay.readmodels import read_rows
    from vigil.cli.events.session import UsageError

    url = _database_url(settings)
    engine = create_engine(url, pool_size=1)
    try:
        return await read_rows(engine)
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as err:
        shown = make_url(url).render_as_string(hide_password=True)
        raise UsageError(
            f"cannot read the read models at {shown}: {err}; "
            "pass --skip-read-models to check the log only"
        ) from err
    finally:
        await engine.dispose()
