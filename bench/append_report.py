"""How ``bench.append`` shows its figures: a terminal table, and README's markdown table.

Both are drawn from a results file alone (``bench/results/append.json``), so
README's table can be redrawn at any time with ``--markdown FILE``.
"""

from __future__ import annotations

import sys
from typing import Any

Row = tuple[str, str, str, str, str, str]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(result: dict[str, Any]) -> str:
    return f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f}"


def _short(run: str) -> str:
    return "seq" if run == "sequential" else run.removeprefix("threads_") + " thr"


def _ok(flag: bool) -> str:
    return "PASS" if flag else "FAIL"


def rows(results: dict[str, Any]) -> list[Row]:
    """(durability, figure, Vigil, peer, goal, result) for the table and README."""
    out: list[Row] = []
    goals = results["goals"]
    starlette = results["starlette"]
    for mode, entry in results["durability"].items():
        label = f"{mode} ({entry['label']})"
        verdict = entry["verdict"]
        append, raw, http = entry["append"], entry["raw_publish"], entry["http"]
        decide, peer = entry["decide_append"], entry["peer"]
        peer_detail = ", ".join(
            f"{_n(r['events_per_s'])} {_short(name)}" for name, r in peer["runs"].items()
        )
        out += [
            (
                label,
                "(a) events/s through EventStore.append, 64 in flight",
                _n(append["events_per_s"]),
                f"{_n(raw['events_per_s'])} raw js.publish",
                f">= {_n(goals['append_events_per_s'])}",
                _ok(verdict["append_events_per_s"]),
            ),
            (label, "(a) append latency p50 / p99 ms", _ms(append), _ms(raw), "", ""),
            (
                label,
                "(b) commands/s through HTTP, 64 clients",
                _n(http["commands_per_s"]),
                f"{_n(starlette['requests_per_s'])} plain Starlette",
                f">= {_n(goals['http_commands_per_s'])}",
                _ok(verdict["http_commands_per_s"]),
            ),
            (
                label,
                "(b) command latency p50 / p99 ms",
                _ms(http),
                _ms(starlette["loadgen"]),
                f"p99 < {goals['http_p99_ms']:.0f}",
                _ok(verdict["http_p99_ms"]),
            ),
            (
                label,
                "(c) decide+map+append events/s vs eventsourcing+PG",
                _n(decide["events_per_s"]),
                f"{_n(peer['events_per_s'])} ({peer_detail})",
                f">= {goals['vigil_vs_peer']:.0f}x",
                f"{_ok(verdict['vigil_vs_peer'])} {verdict['vigil_vs_peer_ratio']:.1f}x",
            ),
        ]
    return out


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    machine = results["machine"]
    by_mode: dict[str, list[Row]] = {}
    for row in rows(results):
        by_mode.setdefault(row[0], []).append(row)
    for label, mode_rows in by_mode.items():
        mode = label.split(" ", 1)[0]
        entry = results["durability"][mode]
        table = Table(
            title=f"{label}: {entry['nats']} vs PostgreSQL {entry['postgres']}",
            title_justify="left",
        )
        for column in ("figure", "Vigil", "peer", "goal", "result"):
            table.add_column(column, justify="right" if column == "Vigil" else "left")
        for row in mode_rows:
            colour = "green" if row[5].startswith("PASS") else "red"
            table.add_row(*row[1:5], f"[{colour}]{row[5]}[/]" if row[5] else "")
        console.print(table)
    loadgen = results["starlette"]["loadgen"]
    note = (
        f"{results['mode']} run {results['timestamp']}, {results['duration_s']}s; "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"other load up to {machine.get('other_load_max', 0):.1f} cores in a window; "
        f"Python {machine['python']}, "
        f"nats-server {machine['nats_server']}, PostgreSQL {machine['postgres']}.\n"
        f"Load generator on plain Starlette: {_n(loadgen['rps'])} req/s using "
        f"{loadgen['client_cpu']:.2f} core"
    )
    wrk = results["starlette"].get("wrk")
    if wrk:
        note += f"; wrk on the same endpoint: {_n(wrk.get('requests_per_s', 0))} req/s"
    console.print(note + ".")


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "| durability | figure | Vigil | peer | goal | result |",
        "|---|---|---:|---|---|---|",
    ]
    last = None
    for row in rows(results):
        cells = ("" if row[0] == last else row[0], *row[1:])
        lines.append("| " + " | ".join(cells) + " |")
        last = row[0]
    lines.append("")
    lines.append(
        f"Measured {results['timestamp']} ({results['mode']} run) on {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB; Python {machine['python']}, "
        f"nats-server {machine['nats_server']}, PostgreSQL {machine['postgres']}; other load "
        f"on the machine up to {machine.get('other_load_max', 0):.1f} cores in a window."
    )
    return "\n".join(lines)
