"""``vigil events ...`` and ``vigil aggregate show`` as an operator runs them: real processes.

Each test runs the CLI in a child process against the session's nats-server,
on streams of its own (``VIGIL_STREAM`` and friends), and reads what it prints;
only the argument checks, which fail before connecting, run in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import nats
import nats.errors
import orjson
import pytest
import typer
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from typer.testing import CliRunner

import migrations
from domain.device import Device
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.port import StreamRef
from infrastructure.eventstore.setup import JetStreamConfig, ensure_jetstream
from infrastructure.natsd import NatsServer
from infrastructure.repository import Repository
from tests.conftest import unique_jetstream_config
from tests.integration.test_replay_readmodels import device_row, fill, timeline_rows
from tests.support.processes import VIGIL, free_port
from vigil.cli import app as vigil_app
from vigil.cli import events

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAPPER = build_mapper()

# Until the lead registers the module in vigil.cli, run it on an app of its own.
_REGISTERED = any(group.name == "events" for group in vigil_app.registered_groups)
_STANDALONE = (
    "import typer; from vigil.cli import events; a = typer.Typer(); events.register(a); a()"
)
COMMAND = [VIGIL] if _REGISTERED else [sys.executable, "-c", _STANDALONE]


def cli_env(tmp_path: Path, config: JetStreamConfig | None, nats_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    if nats_url is not None:
        env["VIGIL_NATS_URL"] = nats_url
    if config is not None:
        env.update(
            VIGIL_STREAM=config.stream,
            VIGIL_SUBJECT_PREFIX=config.subject_prefix,
            VIGIL_SNAPSHOT_BUCKET=config.snapshot_bucket,
        )
    return env


async def spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await spawn(env, *args)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def env(tmp_path: Path, nats_server: str, jetstream_config: JetStreamConfig) -> dict[str, str]:
    return cli_env(tmp_path, jetstream_config, nats_server)


@contextlib.asynccontextmanager
async def other_stream(nc: Client) -> AsyncIterator[JetStreamConfig]:
    """Names for a second stream (not created here), deleted afterwards if something made it."""
    config = unique_jetstream_config()
    try:
        yield config
    finally:
        js = nc.jetstream()
        with contextlib.suppress(nats.errors.Error):
            await js.delete_stream(config.stream)
        with contextlib.suppress(nats.errors.Error):
            await js.delete_key_value(config.snapshot_bucket)


async def device(store: JetStreamEventStore, tenant: str = "acme", anomalies: int = 0) -> StreamRef:
    repo = Repository(store, MAPPER)
    registered = Device.register(
        tenant_id=tenant,
        serial_number=f"SN-{uuid4().hex[:8]}",
        hardware_profile="j",
        actor="op",
        at=AT,
    )
    ref = StreamRef(tenant, "device", registered.id)
    loaded = await repo.load(ref)
    loaded.aggregate = registered
    await repo.save(loaded, registered.collect_events(), idempotency_key="register")
    for n in range(anomalies):
        loaded = await repo.load(ref)
        assert isinstance(loaded.aggregate, Device)
        loaded.aggregate.raise_anomaly(f"k{n}", "info", "", actor="sensor", at=AT)
        await repo.save(loaded, loaded.aggregate.collect_events())
    return ref


# -- tail ------------------------------------------------------------------------------


async def test_tail_follows_new_events_that_match_the_filter(
    env: dict[str, str], jetstream_store: JetStreamEventStore
):
    proc = await spawn(
        env, "events", "tail", "acme/device", "-e", "AnomalyRaised", "--json", "--limit", "2"
    )
    assert proc.stderr is not None
    notice = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
    assert notice.startswith(b"following"), notice + await proc.stderr.read()

    await device(jetstream_store, "globex", anomalies=1)
    watched = await device(jetstream_store, "acme", anomalies=2)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)

    assert proc.returncode == 0, err
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [(x["tenant"], x["id"], x["version"], x["event"]) for x in lines] == [
        ("acme", str(watched.id), 2, "Device.AnomalyRaised"),
        ("acme", str(watched.id), 3, "Device.AnomalyRaised"),
    ]
    assert lines[0]["actor"] == "sensor" and lines[0]["data"]["kind"] == "k0"


async def test_tail_last_without_following_prints_one_line_per_event(
    env: dict[str, str], jetstream_store: JetStreamEventStore
):
    ref = await device(jetstream_store, anomalies=3)

    code, out, err = await run(env, "events", "tail", "--last", "2", "--no-follow")

    assert code == 0, err
    first, second = out.splitlines()
    assert first.split()[:5] == [
        "3",
        AT.isoformat(timespec="milliseconds"),
        str(ref),
        "v3",
        "Device.AnomalyRaised",
    ]
    assert second.split()[0] == "4" and second.split()[-1] == "sensor"


# -- export / import -------------------------------------------------------------------


async def test_export_import_export_gives_the_same_file(
    env: dict[str, str], tmp_path: Path, nats_client: Client, jetstream_store: JetStreamEventStore
):
    for tenant in ("acme", "globex", "acme"):
        await device(jetstream_store, tenant, anomalies=2)
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"

    code, _, err = await run(env, "events", "export", str(first))
    assert code == 0, err
    assert "exported 9 commits (9 events)" in err
    async with other_stream(nats_client) as target:
        target_env = cli_env(tmp_path, target, env["VIGIL_NATS_URL"])
        code, _, err = await run(target_env, "events", "import", str(first))
        assert code == 0, err
        assert "imported 9 commits (9 events, 3 aggregates)" in err
        code, _, err = await run(target_env, "events", "export", str(second))
        assert code == 0, err

    assert second.read_bytes() == first.read_bytes()


async def test_export_will_not_overwrite_a_file_unless_forced(
    env: dict[str, str], tmp_path: Path, jetstream_store: JetStreamEventStore
):
    await device(jetstream_store)
    target = tmp_path / "events.ndjson"
    target.write_text("precious")

    code, _, err = await run(env, "events", "export", str(target))
    assert (code, target.read_text()) == (2, "precious") and "--force" in err

    code, _, err = await run(env, "events", "export", str(target), "--force")
    assert code == 0, err
    assert orjson.loads(target.read_bytes())["type"] == "device"


async def test_import_into_a_store_that_holds_commits_is_refused(
    env: dict[str, str], tmp_path: Path, jetstream_store: JetStreamEventStore
):
    await device(jetstream_store)
    dump = tmp_path / "events.ndjson"
    assert (await run(env, "events", "export", str(dump)))[0] == 0

    code, _, err = await run(env, "events", "import", str(dump))

    assert code == 1
    assert "import refused, nothing was written" in err and "not empty" in err
    assert await jetstream_store.head_position() == 1


async def test_import_of_a_bad_file_names_the_line_and_creates_nothing(
    env: dict[str, str], tmp_path: Path, nats_client: Client, jetstream_store: JetStreamEventStore
):
    await device(jetstream_store, anomalies=1)
    dump = tmp_path / "events.ndjson"
    assert (await run(env, "events", "export", str(dump)))[0] == 0
    first, second = dump.read_bytes().splitlines()
    broken = orjson.loads(second)
    del broken["events"]
    dump.write_bytes(first + b"\n" + orjson.dumps(broken) + b"\n")

    async with other_stream(nats_client) as target:
        code, _, err = await run(
            cli_env(tmp_path, target, env["VIGIL_NATS_URL"]), "events", "import", str(dump)
        )
        with pytest.raises(NotFoundError):
            await nats_client.jetstream().stream_info(target.stream)

    assert code == 1
    assert "line 2: missing field(s) events" in err


# -- verify ----------------------------------------------------------------------------


async def test_verify_reports_a_corrupted_commit_and_exits_non_zero(
    env: dict[str, str],
    nats_client: Client,
    jetstream_config: JetStreamConfig,
    jetstream_store: JetStreamEventStore,
):
    await device(jetstream_store, anomalies=1)
    code, out, err = await run(env, "events", "verify", "--skip-read-models")
    assert (code, out.splitlines()[-1]) == (0, "no problems found"), err

    victim = StreamRef("acme", "device", uuid4())
    subject = f"{jetstream_config.subject_prefix}.acme.device.{victim.id.hex}"
    ack = await nats_client.jetstream().publish(subject, b"\xff not a commit")
    code, out, _ = await run(env, "events", "verify", "--skip-read-models")
    assert code == 1
    assert f"corrupt commit: position {ack.seq} {victim}: body is not a commit" in out

    code, out, _ = await run(env, "events", "verify", "--skip-read-models", "--json")
    report = orjson.loads(out)
    assert (code, report["ok"], report["commits"]) == (1, False, 3)
    assert [(p["kind"], p["position"], p["id"]) for p in report["problems"]] == [
        ("corrupt commit", ack.seq, str(victim.id))
    ]


async def test_verify_compares_the_read_models_with_the_log(
    env: dict[str, str], tmp_path: Path, jetstream_store: JetStreamEventStore
):
    ref = await device(jetstream_store, anomalies=1)
    url = f"sqlite+aiosqlite:///{tmp_path / 'readmodels.db'}"
    engine = create_engine(url)
    try:
        await migrations.upgrade_async(engine)
        await fill(
            engine,
            {"devices": 2, "timeline": 2},
            devices=[device_row(ref, 2, 2)],
            timeline=timeline_rows(ref, [1, 2]),
        )
        code, out, err = await run({**env, "VIGIL_DATABASE_URL": url}, "events", "verify")
        assert code == 0, out + err
        assert out.startswith("checked the event log and the read models: 2 commits")

        await device(jetstream_store)  # the projector has not seen it, yet claims position 3
        await fill(engine, {"models": 3})
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE projection_checkpoints SET position = 3")
        code, out, _ = await run({**env, "VIGIL_DATABASE_URL": url}, "events", "verify")
    finally:
        await engine.dispose()

    assert code == 1
    assert "devices has no row, the log has version 1 up to position 3" in out
    assert "timeline has no rows, the log has 1 events up to position 3" in out


async def test_verify_without_a_read_model_database_says_how_to_skip_it(env: dict[str, str]):
    code, _, err = await run(env, "events", "verify")

    assert code == 2 and "--skip-read-models" in err


# -- aggregate show --------------------------------------------------------------------


async def test_aggregate_show_rebuilds_the_state_at_a_version(
    env: dict[str, str], jetstream_store: JetStreamEventStore
):
    ref = await device(jetstream_store, anomalies=2)

    code, out, err = await run(
        env, "aggregate", "show", "device", str(ref.id), "--version", "2", "--json"
    )
    assert code == 0, err
    shown = orjson.loads(out)
    assert (shown["tenant"], shown["version"], shown["current_version"]) == ("acme", 2, 3)
    assert shown["state"]["anomaly_count"] == 1
    assert [e["event"] for e in shown["history"]] == ["Device.Registered", "Device.AnomalyRaised"]

    code, out, err = await run(
        env, "aggregate", "show", "device", str(ref.id), "--at", "2026-03-01T12:00:00Z"
    )
    assert code == 0, err
    assert f"device {ref.id} (tenant acme) at version 3 of 3" in out
    assert "anomaly_count" in out and "AnomalyRaised" in out


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["aggregate", "show", "gadget", str(uuid4())], "unknown aggregate type 'gadget'"),
        (["aggregate", "show", "device", "SN-1"], "bad aggregate id 'SN-1': not a UUID"),
        (["aggregate", "show", "device", str(uuid4()), "--at", "noon"], "bad time 'noon'"),
        (["aggregate", "show", "device", str(uuid4()), "-t", "a.b"], "bad tenant 'a.b'"),
        (["events", "tail", "a/b/c/d"], "must look like TENANT[/TYPE[/ID]]"),
        (["events", "tail", "acme", "--tenant", "globex"], "tenant given twice"),
        (["events", "tail", "--aggregate", "x"], "bad aggregate id 'x': not a UUID"),
        (["events", "tail", "--from", "3", "--last", "2"], "cannot be used together"),
    ],
)
def test_bad_arguments_are_refused_before_connecting(args: list[str], message: str):
    # In-process: these fail before any connection, so no server and no child process.
    app = typer.Typer()
    events.register(app)

    result = CliRunner().invoke(app, args, env={"VIGIL_NATS_URL": "nats://127.0.0.1:1"})

    assert (result.exit_code, message in result.stderr) == (2, True), result.stderr


async def test_an_aggregate_the_log_does_not_have_is_named(env: dict[str, str]):
    missing = uuid4()

    code, _, err = await run(env, "aggregate", "show", "fleet", str(missing), "--tenant", "acme")

    assert code == 2 and f"no fleet {missing} in tenant 'acme', nor in any other tenant" in err


async def test_an_unreachable_nats_url_is_named(tmp_path: Path):
    url = f"nats://127.0.0.1:{free_port()}"

    code, _, err = await run(cli_env(tmp_path, None, url), "events", "tail", "--no-follow")

    assert code == 1 and f"cannot reach NATS at {url} (from VIGIL_NATS_URL)" in err


async def test_a_missing_stream_is_explained(tmp_path: Path, nats_server: str):
    code, _, err = await run(
        cli_env(tmp_path, unique_jetstream_config(), nats_server), "events", "tail", "--no-follow"
    )

    assert code == 1 and "does not exist on this NATS server" in err


async def test_without_a_url_or_a_running_stack_it_says_how_to_start_one(tmp_path: Path):
    code, _, err = await run(cli_env(tmp_path, None, None), "events", "tail")

    assert code == 1 and "VIGIL_NATS_URL is not set" in err and "vigil up" in err


async def test_without_a_url_it_finds_the_embedded_server_of_the_data_dir(tmp_path: Path):
    async with NatsServer(tmp_path / "data" / "jetstream") as server:
        nc = await nats.connect(server.url)
        try:
            config = JetStreamConfig()
            await ensure_jetstream(nc.jetstream(), config)
            ref = await device(JetStreamEventStore(nc, config))
            code, out, err = await run(
                cli_env(tmp_path, None, None),
                "events",
                "tail",
                "--last",
                "1",
                "--no-follow",
                "--json",
            )
        finally:
            await nc.close()

    assert code == 0, err
    assert orjson.loads(out)["id"] == str(ref.id)
