"""Helpers every ``vigil`` sub-command shares: settings and logging."""

from __future__ import annotations

import logging
import sys

import typer

from vigil.config import ConfigError, Settings


def load_settings() -> Settings:
    """Settings from the environment, or exit 2 with the offending variable named."""
    try:
        return Settings.from_env()
    except ConfigError as err:
        typer.secho(f"configuration error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from err


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
