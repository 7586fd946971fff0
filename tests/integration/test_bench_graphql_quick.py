"""The GraphQL benchmark runs end to end in --quick mode, so it never rots.

No speed is asserted (figures belong to ``bench/``): only that every server
answered every request without errors, every figure is a positive number,
and the throwaway database is gone afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_quick_graphql_benchmark_measures_every_server(tmp_path: Path) -> None:
    import psycopg

    output = tmp_path / "graphql.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.graphql", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    assert set(results["servers"]) == {"vigil", "vigil-nocache", "peer"}
    for server, figures in results["servers"].items():
        for mode in ("device", "devices"):
            measured = figures[mode]
            assert measured["rps"] > 0 and measured["p99_ms"] > 0, (server, mode, measured)
            assert set(measured["statuses"]) == {"200"}, (server, mode, measured)
            assert measured["graphql_errors"] == 0, (server, mode, measured["first_error"])
    assert results["verdict"]["device_vs_peer"] > 0
    assert "| vigil | device(id) |" in proc.stdout
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
        rows = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (results["postgres_database"],)
        ).fetchall()
    assert rows == []
