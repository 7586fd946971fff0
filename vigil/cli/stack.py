"""``vigil up``, ``vigil api`` and ``vigil token``: running the stack."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from vigil.cli.common import load_settings, setup_logging
from vigil.config import ConfigError, Settings

# The server, uvloop and the JWT library are imported inside the commands that use them:
# every `vigil` command, `--help` included, imports this module to build its options.


def _run(settings: Settings, *, whole_stack: bool) -> None:
    import uvloop

    from vigil.stack import serve

    setup_logging(settings)
    try:
        uvloop.run(serve(settings, whole_stack=whole_stack))
    except ConfigError as err:
        typer.secho(f"configuration error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from err
    except KeyboardInterrupt:
        pass


def up(
    host: Annotated[str | None, typer.Option(help="Bind address [VIGIL_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [VIGIL_PORT]")] = None,
) -> None:
    """Run the whole stack on this machine (embedded NATS unless VIGIL_NATS_URL is set)."""
    settings = load_settings()
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if overrides:
        settings = replace(settings, **overrides)  # type: ignore[arg-type]
    if settings.embedded:
        typer.echo(
            f"vigil: embedded stack, data in {settings.data_dir}; "
            f"API on http://{settings.host}:{settings.port}  (get a token: vigil token)",
            err=True,
        )
    _run(settings, whole_stack=True)


def api(
    host: Annotated[str | None, typer.Option(help="Bind address [VIGIL_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [VIGIL_PORT]")] = None,
) -> None:
    """Run only the command API against an existing NATS (VIGIL_NATS_URL)."""
    settings = load_settings()
    settings = replace(
        settings,
        **{k: v for k, v in {"host": host, "port": port}.items() if v is not None},  # type: ignore[arg-type]
    )
    _run(settings, whole_stack=False)


def token(
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "admin",
    tenant: Annotated[str, typer.Option(help="Tenant id")] = "default",
    subject: Annotated[str, typer.Option(help="Actor recorded on events")] = "local-admin",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 86_400,
) -> None:
    """Print a bearer token signed with this stack's secret."""
    from commands.auth import issue_token

    settings = load_settings()
    try:
        signed = issue_token(
            settings.resolve_jwt_secret(),
            subject=subject,
            tenant=tenant,
            role=role,
            ttl_seconds=ttl,
        )
    except (ValueError, ConfigError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from err
    typer.echo(signed)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(api)
    app.command()(token)
