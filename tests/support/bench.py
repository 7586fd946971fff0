"""What the benchmark smoke tests share: a figure check and the throwaway databases left."""

from __future__ import annotations

import psycopg


def positive(value: object) -> bool:
    """A measured figure: a real number above zero (booleans are not figures)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def bench_databases() -> set[str]:
    """Benchmark databases still on the local PostgreSQL (a clean run leaves none)."""
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'vigil_bench_%'"
        ).fetchall()
    return {row[0] for row in rows}
