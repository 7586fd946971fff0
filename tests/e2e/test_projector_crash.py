"""kill -9 the projector at random points, many times over: the read model is as if it never died.

A real ``python -m projections`` process projects a fleet's history from a
real nats-server into PostgreSQL, in small batches so that kills land inside
batches: mid-fold, mid-write, between commit and acknowledgement. Each kill
comes when the checkpoint has passed a random target (progress, not time),
plus a random number of further polls; new events keep arriving between
some of the kills. After the last restart has caught up, every read-model
table, checkpoint and dead letter must equal a build from scratch.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

import migrations
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig
from infrastructure.repository import Repository
from projections.service import Projector
from tests.support.databases import pg_database
from tests.support.readmodels import dump
from tests.support.scenario import drive

pytestmark = pytest.mark.integration

KILLS = 15
BATCH = 20
REPO = Path(__file__).resolve().parents[2]


class ProjectorProcess:
    """``python -m projections`` with the test's stream and database."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "projections", "--batch-size", str(BATCH)],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"projector exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}"
            )


async def checkpoint(conn: asyncpg.Connection) -> int:
    """The lowest checkpoint of the live projections (0 before the first batch)."""
    value = await conn.fetchval(
        "SELECT min(position) FROM projection_checkpoints WHERE name NOT LIKE '%\\_\\_rebuild'"
    )
    return int(value or 0)


async def wait_for(
    conn: asyncpg.Connection, target: int, proc: ProjectorProcess, seconds: float = 60
) -> int:
    """Poll the checkpoint until it reaches ``target``; polling another process is all we can do."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.check_alive()
        reached = await checkpoint(conn)
        if reached >= target:
            return reached
        await asyncio.sleep(0.005)
    raise AssertionError(f"checkpoint stuck below {target}:\n{proc.log.read_text()[-4000:]}")


@pytest.mark.timeout(600)
async def test_killing_the_projector_at_random_points_never_loses_or_doubles_an_event(
    nats_server: str,
    nats_client,
    jetstream_config: JetStreamConfig,
    pg_url: str,
    tmp_path: Path,
):
    rng = random.Random(int.from_bytes(os.urandom(4)))
    store = JetStreamEventStore(nats_client, jetstream_config)
    repository = Repository(store, build_mapper())
    await drive(repository, devices=250, seed=1)
    engine = create_engine(pg_url)
    await migrations.upgrade_async(engine)
    await engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_NATS_URL=nats_server,
        VIGIL_DATABASE_URL=pg_url,
        VIGIL_STREAM=jetstream_config.stream,
        VIGIL_SUBJECT_PREFIX=jetstream_config.subject_prefix,
        VIGIL_SNAPSHOT_BUCKET=jetstream_config.snapshot_bucket,
        VIGIL_DATA_DIR=str(tmp_path / "data"),
        VIGIL_LOG_LEVEL="warning",
    )
    process = ProjectorProcess(env, tmp_path / "projector.log")
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        kills_at = []
        for kill in range(KILLS):
            if kill % 4 == 3:  # events keep arriving while the projector dies and restarts
                await drive(repository, tenant=f"wave{kill}", devices=15, seed=kill)
            head = await store.head_position()
            process.start()
            now = await checkpoint(conn)
            target = min(head, now + rng.randint(1, 6 * BATCH))
            reached = await wait_for(conn, target, process)
            for _ in range(rng.randint(0, 3)):  # a little further into the next batch, or not
                reached = await checkpoint(conn)
            process.kill()
            kills_at.append(reached)
        process.start()
        head = await store.head_position()
        await wait_for(conn, head, process)
        assert process.stop() == 0
    finally:
        await conn.close()
        if process.proc is not None and process.proc.poll() is None:
            process.kill()

    assert len(kills_at) == KILLS and kills_at[-1] < head  # the kills came before the end
    survivor = create_engine(pg_url)
    try:
        after_crashes = await dump(survivor)
    finally:
        await survivor.dispose()
    async with pg_database() as scratch_url:
        scratch = create_engine(scratch_url)
        try:
            await migrations.upgrade_async(scratch)
            await Projector(
                scratch, nats_server, jetstream_config, durable="scratch", idle_timeout=0.2
            ).catch_up()
            from_scratch = await dump(scratch)
        finally:
            await scratch.dispose()
    assert after_crashes["timeline"] and after_crashes["devices"]
    for table in from_scratch:
        assert after_crashes[table] == from_scratch[table], first_difference(
            table, after_crashes[table], from_scratch[table]
        )
    assert set(after_crashes["checkpoints"].values()) == {head}


def first_difference(table: str, got: object, want: object) -> str:
    """Which row and columns differ, so a failure says what was lost or doubled."""
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return f"{table}: {len(got)} rows after the crashes, {len(want)} from scratch"
        for a, b in zip(got, want, strict=True):
            if a != b:
                return f"{table}: " + str(
                    {k: (a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)}
                )
    return f"{table}: {got!r} != {want!r}"
