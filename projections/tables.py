"""The read-model tables: SQLAlchemy Core definitions shared by projections and queries.

Every read-model table starts its primary key with ``tenant_id`` (invariant 8:
a query that forgets the tenant cannot use the key, and one that names it
cannot reach another tenant's rows). Rows carry ``version`` (the aggregate
version they reflect) and ``position`` (the stream position of the last commit
applied to them), so readers can tell how fresh a row is and subscriptions can
resume from a position.

Fleet device counts are *maintained*, not computed at query time: the devices
projection keeps ``fleet_device_counts`` in step with each device's fleet,
status and reported model in the same transaction as the device rows. A fleet
page then reads a handful of rows per fleet instead of grouping every device
of every fleet on the page; the devices projection already holds each device's
previous row while folding, so the deltas cost nothing extra.

Index and constraint names come from ``NAMING_CONVENTION`` and so follow the
table name: a rebuild's shadow copy (``projections.shadow``) gets its own
names, renamed back to these when it is swapped in.

The migrations in ``migrations/versions`` create exactly these tables; a test
compares the two on PostgreSQL and SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_LENGTH = 63
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp that comes back aware, in UTC, on every database.

    PostgreSQL stores ``timestamptz`` natively; SQLite keeps text without an
    offset, so values are normalised to UTC on the way in and given back their
    ``tzinfo`` on the way out. Same code, same values on both.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or dialect.name != "sqlite":
            return value
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: read models store aware times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or dialect.name != "sqlite":
            return value
        return value.replace(tzinfo=UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # PostgreSQL's values need nothing: no per-value call (a page reads hundreds).
        if dialect.name != "sqlite":
            return self.impl_instance.result_processor(dialect, coltype)
        return super().result_processor(dialect, coltype)


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(TENANT_LENGTH), primary_key=True)


def _stamps() -> list[sa.Column[Any]]:
    """When the aggregate started and last changed (event times), and what the row reflects."""
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    ]


# Rows updated over and over (one per aggregate) leave room in each page, so
# PostgreSQL can update them in place (HOT) when no indexed column changes,
# which is most updates: an anomaly, a heartbeat-driven status, a rollout tally.
_UPDATED_IN_PLACE = {"fillfactor": "70"}

devices = sa.Table(
    "devices",
    metadata,
    _tenant(),
    sa.Column("id", sa.Uuid, primary_key=True),
    # Byte order on PostgreSQL (the "C" collation), as SQLite orders text: pages
    # and prefix search then agree across databases and share one index.
    sa.Column(
        "serial_number",
        sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql"),
        nullable=False,
    ),
    sa.Column("hardware_profile", sa.String(64), nullable=False),
    sa.Column("firmware_version", sa.String(64)),
    # registered | online | offline | decommissioned
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fleet_id", sa.Uuid),
    sa.Column("desired_model_id", sa.Uuid),
    sa.Column("desired_model_version", sa.String(64)),
    sa.Column("reported_model_id", sa.Uuid),
    sa.Column("reported_model_version", sa.String(64)),
    sa.Column("last_install_error", sa.Text),
    sa.Column("last_seen_at", UtcDateTime()),
    # unknown | healthy | degraded | critical (rules in projections.devices)
    sa.Column("health", sa.String(16), nullable=False),
    sa.Column("anomaly_count", sa.Integer, nullable=False),
    sa.Column("last_anomaly_at", UtcDateTime()),
    sa.Column("last_anomaly_kind", sa.String(64)),
    sa.Column("last_anomaly_severity", sa.String(16)),
    *_stamps(),
    # Serves keyset pages (ORDER BY serial_number) and, the column being "C",
    # prefix search (``LIKE 'abc%'``) too.
    sa.Index(None, "tenant_id", "serial_number", unique=True),
    sa.Index(None, "tenant_id", "fleet_id"),
    sa.Index(None, "tenant_id", "status"),
    sa.Index(None, "tenant_id", "reported_model_version"),
    postgresql_with=_UPDATED_IN_PLACE,
)


fleet_device_counts = sa.Table(
    "fleet_device_counts",
    metadata,
    _tenant(),
    sa.Column("fleet_id", sa.Uuid, primary_key=True),
    # "status": key is a device status; "model": key is a reported model version,
    # "" for devices that have not reported one.
    sa.Column("dimension", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

fleets = sa.Table(
    "fleets",
    metadata,
    _tenant(),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("current_model_id", sa.Uuid),
    sa.Column("current_model_version", sa.String(64)),
    sa.Column("rollout_count", sa.Integer, nullable=False),
    # The active rollout; every rollout_* column is NULL when there is none.
    sa.Column("rollout_status", sa.String(16)),  # running | paused
    sa.Column("rollout_model_id", sa.Uuid),
    sa.Column("rollout_model_version", sa.String(64)),
    sa.Column("rollout_previous_model_version", sa.String(64)),
    # Cumulative percentages, e.g. [5, 25, 100]; SQL NULL (not JSON null) without a rollout.
    sa.Column("rollout_phases", sa.JSON(none_as_null=True)),
    sa.Column("rollout_phase", sa.Integer),  # phases started so far (0: none yet)
    sa.Column("rollout_percent", sa.Integer),  # percentage of the latest phase started
    sa.Column("rollout_failure_threshold", sa.Float),
    sa.Column("rollout_started_at", UtcDateTime()),
    sa.Column("rollout_targeted", sa.Integer),
    sa.Column("rollout_succeeded", sa.Integer),
    sa.Column("rollout_failed", sa.Integer),
    # How the latest finished rollout ended: completed | halted | rolled_back
    sa.Column("last_rollout_outcome", sa.String(16)),
    sa.Column("last_rollout_model_version", sa.String(64)),
    sa.Column("last_rollout_reason", sa.Text),
    sa.Column("last_rollout_ended_at", UtcDateTime()),
    *_stamps(),
    sa.Index(None, "tenant_id", "name", unique=True),
    postgresql_with=_UPDATED_IN_PLACE,
)

models = sa.Table(
    "models",
    metadata,
    _tenant(),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    # The model's own version ("1.4.2"); ``version`` is the aggregate's event count.
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("input_signature", sa.JSON, nullable=False),
    sa.Column("output_signature", sa.JSON, nullable=False),
    sa.Column("artifact_name", sa.String(255)),
    # registered | staging | production | deprecated
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("deprecation_reason", sa.Text),
    *_stamps(),
    sa.Index(None, "tenant_id", "name", "model_version", unique=True),
    sa.Index(None, "tenant_id", "stage"),
    postgresql_with=_UPDATED_IN_PLACE,
)

timeline = sa.Table(
    "timeline",
    metadata,
    _tenant(),
    sa.Column("aggregate_id", sa.Uuid, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # the event's aggregate version
    sa.Column("aggregate_type", sa.String(16), nullable=False),  # device | fleet | model
    sa.Column("event_type", sa.String(64), nullable=False),  # e.g. "AnomalyRaised"
    sa.Column("position", sa.BigInteger, nullable=False),  # the commit's stream position
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),  # the event's own fields, JSON-safe
    # No index beyond the key: every query names one aggregate, and each index
    # is paid for by every projected event (see migration 0003).
)

# Operational tables: one row per projection, not per tenant, and never served
# through a tenant-facing API.

projection_checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),  # last stream position applied
    # Bumped when a rebuild swaps new tables in, so a running projector knows
    # the rows it remembers are no longer the ones in the tables.
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("projection", sa.String(100), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("tenant_id", sa.String(TENANT_LENGTH), nullable=False),
    sa.Column("aggregate_type", sa.String(16), nullable=False),
    sa.Column("aggregate_id", sa.Uuid, nullable=False),
    sa.Column("aggregate_version", sa.Integer, nullable=False),  # 0: the commit did not decode
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the stored event, for a human to read
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.Index(None, "projection", "position"),
)

READ_MODEL_TABLES = (devices, fleet_device_counts, fleets, models, timeline)
