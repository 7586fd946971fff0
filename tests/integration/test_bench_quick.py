"""The benchmark runs end to end in --quick mode, so it never rots.

No speed is asserted here (figures belong to ``bench/``, never to timed
tests): only that every figure was measured and is a positive number, and that
the run cleaned up after itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bench import bench_databases, positive

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_quick_benchmark_measures_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "append.json"

    proc = subprocess.run(
        [sys.executable, "-m", "bench.append", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    assert {"cpu", "cores", "python", "nats_server", "postgres"} <= results["machine"].keys()
    assert positive(results["starlette"]["requests_per_s"])
    assert set(results["durability"]) == {"relaxed", "durable"}
    for mode, entry in results["durability"].items():
        figures = {
            "raw_publish": entry["raw_publish"]["events_per_s"],
            "append": entry["append"]["events_per_s"],
            "append_p99": entry["append"]["p99_ms"],
            "decide_append": entry["decide_append"]["events_per_s"],
            "http": entry["http"]["commands_per_s"],
            "http_p50": entry["http"]["p50_ms"],
            "http_p99": entry["http"]["p99_ms"],
            "peer": entry["peer"]["events_per_s"],
            "peer_sequential": entry["peer"]["runs"]["sequential"]["events_per_s"],
            "ratio": entry["verdict"]["vigil_vs_peer_ratio"],
        }
        for name, value in figures.items():
            assert positive(value), f"{mode}: {name} is {value!r}"
        assert set(entry["http"]["raise_anomaly"]["statuses"]) == {"201"}, entry["http"]
    # The table printed, and the throwaway databases are gone.
    assert "EventStore.append" in proc.stdout
    assert results["postgres_database"] not in bench_databases()


def test_markdown_table_from_results(tmp_path: Path) -> None:
    results = REPO / "bench" / "results" / "append.json"  # the committed full run
    proc = subprocess.run(
        [sys.executable, "-m", "bench.append", "--markdown", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("| durability | figure |")
