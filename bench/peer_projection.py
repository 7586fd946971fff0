"""The peer for projection catch-up: the ``eventsourcing`` library's ProjectionRunner on PostgreSQL.

The same events (the seeded ``Workload``, mapped with the library's own
mapper) are recorded in a PostgreSQL application recorder first, untimed.
Then the library's ``ProjectionRunner`` projects them, timed, the way the
library intends: its subscription hands over one event at a time, and a view
(a ``PostgresTrackingRecorder``) writes that event's read-model changes and
its tracking record in one transaction. The view writes the same tables as
Vigil (migrated by Vigil's migrations) with the same pure apply functions,
so the two do the same work; what differs is batching and the runner.

Runs in its own process, against a database the orchestrator created; prints
one JSON line. The runner is stopped after ``--seconds`` (or when all events
are applied) and the rate is events applied over time taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner

from bench.common import postgres_env
from bench.projection_workload import TENANT, Workload
from projections import devices, fleets, models, tables
from projections.envelope import event_fields

_ROWS: dict[str, tuple[Any, Any, Any]] = {
    "Device": (tables.devices, devices.APPLIES, devices.DevicesProjection.creates),
    "Fleet": (tables.fleets, fleets.APPLIES, fleets.FleetsProjection.creates),
    "Model": (tables.models, models.APPLIES, models.ModelsProjection.creates),
}
_TYPES = {"Device": "device", "Fleet": "fleet", "Model": "model"}


class FleetApp(Application[UUID]):
    """The application the events were recorded by (the library's JSON transcoder)."""


def _jsonable(value: Any) -> Any:
    from psycopg.types.json import Json

    return Json(value, dumps=lambda v: json.dumps(v, default=str))


class ReadModelView(PostgresTrackingRecorder):
    """Vigil's read-model tables, written one event (and one tracking record) per transaction."""

    def project(self, event: Any, tracking: Tracking) -> None:
        kind = type(event).__qualname__.split(".")[0]
        table, applies, creates = _ROWS[kind]
        columns = [c.name for c in table.columns]
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"SELECT * FROM {table.name} WHERE tenant_id = %s AND id = %s",
                (TENANT, event.originator_id),
            )
            row = curs.fetchone()
            if row is None and type(event) in creates:
                row = {
                    "tenant_id": TENANT,
                    "id": event.originator_id,
                    "created_at": event.timestamp,
                }
            if row is not None:
                new = {
                    **row,
                    **applies[type(event)](row, event),
                    "version": event.originator_version,
                    "position": tracking.notification_id,
                    "updated_at": event.timestamp,
                }
                self._upsert(curs, table.name, columns, new)
                if kind == "Device":
                    self._count(curs, row if "status" in row else None, new)
            curs.execute(
                "INSERT INTO timeline VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    TENANT,
                    event.originator_id,
                    event.originator_version,
                    _TYPES[kind],
                    type(event).__name__,
                    tracking.notification_id,
                    event.actor,
                    event.timestamp,
                    _jsonable(event_fields(event)),
                ),
            )
            self._insert_tracking(curs, tracking)

    def _upsert(self, curs: Any, table: str, columns: list[str], row: dict[str, Any]) -> None:
        json_columns = {"rollout_phases", "input_signature", "output_signature"}
        values = [_jsonable(row[c]) if c in json_columns else row[c] for c in columns]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in ("tenant_id", "id"))
        curs.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT (tenant_id, id) DO UPDATE SET {updates}",
            values,
        )

    def _count(self, curs: Any, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        for (tenant, fleet, dimension, key), delta in devices.count_deltas(
            {"k": before}, {"k": after}
        ).items():
            if delta:
                curs.execute(
                    "INSERT INTO fleet_device_counts VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (tenant_id, fleet_id, dimension, key) "
                    "DO UPDATE SET count = fleet_device_counts.count + EXCLUDED.count",
                    (tenant, fleet, dimension, key, delta),
                )


class ReadModels(Projection[ReadModelView]):
    name = "readmodels"
    target = 0  # events to apply before ``done`` is set (set before the runner starts)

    def __init__(self, view: ReadModelView) -> None:
        super().__init__(view)
        self.applied = 0
        self.done = threading.Event()

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.project(domain_event, tracking)
        self.applied += 1
        if self.applied >= self.target:
            self.done.set()


def record(env: dict[str, str], *, events: int, devices_count: int, seed: int) -> int:
    """Record the workload's events in the library's PostgreSQL application recorder."""
    app = FleetApp(env={**env, "CREATE_TABLE": "y"})
    try:
        workload = Workload(app.mapper, events=events, devices=devices_count, seed=seed)
        pending: list[Any] = []
        recorded = 0
        for commit in workload.commits():
            pending.extend(commit.events)
            if len(pending) >= 2000:
                app.recorder.insert_events(pending)
                recorded += len(pending)
                pending = []
        if pending:
            app.recorder.insert_events(pending)
            recorded += len(pending)
        return recorded
    finally:
        app.close()


def run(
    dbname: str, *, events: int, devices_count: int, seed: int, seconds: float
) -> dict[str, Any]:
    env = postgres_env(dbname)
    env["POSTGRES_POOL_SIZE"] = "4"
    recorded = record(env, events=events, devices_count=devices_count, seed=seed)
    ReadModels.target = recorded
    env["CREATE_TABLE"] = "y"
    started = time.perf_counter()
    cpu = time.process_time()
    runner: ProjectionRunner[FleetApp, ReadModelView] = ProjectionRunner(
        application_class=FleetApp, projection_class=ReadModels, view_class=ReadModelView, env=env
    )
    projection = runner.projection
    assert isinstance(projection, ReadModels)
    with runner:
        projection.done.wait(seconds)
        applied = projection.applied
        elapsed = time.perf_counter() - started
    return {
        "recorded": recorded,
        "applied": applied,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(applied / elapsed, 1),
        "client_cpu": round((time.process_time() - cpu) / elapsed, 3),
        "finished": applied >= recorded,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_projection", description=__doc__)
    parser.add_argument("--db", required=True, help="database, migrated by Vigil's migrations")
    parser.add_argument("--events", type=int, default=5000, help="events recorded for the peer")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30.0, help="time box for the runner")
    args = parser.parse_args(argv)
    result = run(
        args.db,
        events=args.events,
        devices_count=args.devices,
        seed=args.seed,
        seconds=args.seconds,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
