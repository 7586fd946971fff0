"""The subscription benchmark runs end to end in --quick mode, so it never rots.

No speed is asserted (figures belong to ``bench/``, never to timed tests):
only that every figure was measured, that Vigil read the row once per event
where the peer read it once per subscriber, and that the run cleaned up.
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


@pytest.mark.timeout(300)
def test_quick_subscription_benchmark_measures_vigil_and_the_peer(tmp_path: Path) -> None:
    output = tmp_path / "subscriptions.json"

    proc = subprocess.run(
        [sys.executable, "-m", "bench.subscriptions", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    assert set(results["servers"]) == {"vigil", "peer"}
    for server, kinds in results["servers"].items():
        assert set(kinds) == {"device_updated", "events"}
        for kind, figures in kinds.items():
            shape = results["shapes"][server]
            assert figures["subscribers"] == shape["connections"] * shape["per_connection"]
            assert positive(figures["last_delivery_p99_median_window_ms"]), (server, kind)
            assert len(figures["windows"]) == min(3, shape["rounds"])
            for name in ("p50_ms", "p99_ms", "max_ms"):
                assert positive(figures["last_delivery"][name]), (server, kind, name)
                assert positive(figures["every_delivery"][name]), (server, kind, name)
    vigil, peer = results["servers"]["vigil"], results["servers"]["peer"]
    assert vigil["device_updated"]["row_reads_per_event"] == 1
    assert peer["device_updated"]["row_reads_per_event"] == peer["device_updated"]["subscribers"]
    assert {"device_updated", "events"} == set(results["verdict"])
    assert "| device_updated | vigil |" in proc.stdout
    assert results["postgres_database"] not in bench_databases()
