"""``vigil migrate``, ``vigil projector`` and ``vigil projections status|rebuild``, run for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.repository import Repository
from tests.support.databases import sqlite_file_url
from tests.support.scenario import drive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# The commands on an app of their own, as `vigil` will have them once registered.
CLI = """
import typer
from vigil.cli import projections
app = typer.Typer()
projections.register(app)
app()
"""


@pytest.fixture
def env(nats_server: str, jetstream_config: JetStreamConfig, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_NATS_URL=nats_server,
        VIGIL_DATABASE_URL=sqlite_file_url(tmp_path),
        VIGIL_STREAM=jetstream_config.stream,
        VIGIL_SUBJECT_PREFIX=jetstream_config.subject_prefix,
        VIGIL_SNAPSHOT_BUCKET=jetstream_config.snapshot_bucket,
        VIGIL_DATA_DIR=str(tmp_path / "data"),
        VIGIL_LOG_LEVEL="warning",
    )
    return env


def vigil(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status(env: dict[str, str]) -> dict[str, dict]:
    done = vigil(env, "projections", "status", "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in map(json.loads, done.stdout.splitlines())}


@pytest.fixture
async def head(jetstream_store: JetStreamEventStore) -> int:
    """A fleet's history in the stream; its last position."""
    await drive(Repository(jetstream_store, build_mapper()), devices=30)
    return await jetstream_store.head_position()


def test_migrate_then_project_then_report_then_rebuild(
    env: dict[str, str], head: int, tmp_path: Path
):
    migrated = vigil(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    before = status(env)
    assert {name: row["lag"] for name, row in before.items()} == dict.fromkeys(before, head)

    log = tmp_path / "projector.log"
    with log.open("wb") as out:
        projector = subprocess.Popen(
            [sys.executable, "-c", CLI, "projector", "--batch-size", "50"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while min(row["position"] for row in status(env).values()) < head:
            assert projector.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)  # polling another process's progress; there is nothing to await
    finally:
        projector.send_signal(signal.SIGTERM)
        assert projector.wait(30) == 0, log.read_text()

    after = status(env)
    assert set(after) == {"devices", "fleets", "models", "timeline"}
    assert all(row["lag"] == 0 and row["dead_letters"] == 0 for row in after.values())

    rebuilt = vigil(env, "projections", "rebuild", "devices", "--batch-size", "100")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"devices rebuilt and swapped in at position {head:,}" in rebuilt.stdout
    table = vigil(env, "projections", "status")
    assert table.returncode == 0 and "timeline" in table.stdout and "devices" in table.stdout


def test_an_unknown_projection_is_named_in_the_error(env: dict[str, str]):
    done = vigil(env, "projections", "rebuild", "gadgets")

    assert done.returncode == 2
    assert "unknown projection 'gadgets'" in done.stderr


def test_the_projector_needs_a_database_url_it_can_use(env: dict[str, str]):
    done = vigil({**env, "VIGIL_DATABASE_URL": "mysql://nope"}, "migrate")

    assert done.returncode == 2
    assert "VIGIL_DATABASE_URL" in done.stderr
