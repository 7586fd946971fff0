"""The projection benchmark runs end to end in --quick mode, so it never rots.

No speed is asserted (figures belong to ``bench/``, never to timed tests):
only that every figure was measured, the read models were really built, and
the run dropped the databases it made.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support.bench import positive
from tests.support.databases import PG_ADMIN_DSN

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


async def _bench_databases() -> set[str]:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'vigil_bench_%'"
        )
    finally:
        await conn.close()
    return {row["datname"] for row in rows}


@pytest.mark.timeout(300)
def test_quick_projection_benchmark_measures_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "projection.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench.projection", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    assert {"cpu", "cores", "python", "nats_server", "postgres"} <= results["machine"].keys()
    events = results["load"]["events"]
    assert events >= results["workload"]["events"]
    for reader in ("ordered", "feed"):
        figures = results["reference_read_alone"][reader]
        assert figures["msgs"] == results["load"]["head"]
        assert positive(figures["msgs_per_s"])
    assert set(results["vigil"]) == set(results["peer"]) == {"durable", "relaxed"}
    for mode, vigil in results["vigil"].items():
        assert vigil["rows"]["timeline"] == events, mode  # every event projected, once
        assert vigil["rows"]["devices"] == results["workload"]["devices"]
        assert positive(vigil["events_per_s"])
        assert positive(results["peer"][mode]["events_per_s"])
        assert positive(results["verdict"][mode]["vigil_vs_peer"])
    assert "Vigil projector catch-up" in done.stdout
    # The databases it made are gone (others' benchmarks may have their own meanwhile).
    assert len(results["postgres_databases"]) == 4
    assert not set(results["postgres_databases"]) & asyncio.run(_bench_databases())
