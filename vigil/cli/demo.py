"""``vigil demo``: play a fleet scenario against a running stack and print what happened."""

from __future__ import annotations

from typing import Annotated

import typer

from vigil.cli.common import load_settings

# httpx, the scenario and the JWT library are imported inside the command: every `vigil`
# command, `--help` included, imports this module to build its options.


def demo(
    url: Annotated[str, typer.Option(help="Base URL of the command API")] = "",
    tenant: Annotated[str, typer.Option(help="Tenant to play in")] = "demo",
    token: Annotated[
        str | None, typer.Option(help="Bearer token (default: sign one locally)")
    ] = None,
) -> None:
    """Drive a realistic fleet scenario (models, fleet, phased rollout, auto rollback)."""
    import asyncio

    import httpx

    from commands.auth import issue_token
    from vigil.demo import DemoError, run_demo

    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    bearer = token or issue_token(
        settings.resolve_jwt_secret(), subject="vigil-demo", tenant=tenant, role="admin"
    )

    async def play() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await run_demo(client, bearer, typer.echo)

    try:
        asyncio.run(play())
    except httpx.TransportError as err:
        typer.secho(f"cannot reach {base}: {err}; is `vigil up` running?", fg="red", err=True)
        raise typer.Exit(1) from err
    except DemoError as err:
        typer.secho(f"demo stopped: {err}", fg="red", err=True)
        raise typer.Exit(1) from err


def register(app: typer.Typer) -> None:
    app.command()(demo)
