"""Create the read-model tables: devices, fleets, models, timeline and the projector's own.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 09:01:49.970376
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("projection", sa.String(length=100), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("aggregate_type", sa.String(length=16), nullable=False),
        sa.Column("aggregate_id", sa.Uuid(), nullable=False),
        sa.Column("aggregate_version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        op.f("ix_dead_letters_projection_position"),
        "dead_letters",
        ["projection", "position"],
        unique=False,
    )
    op.create_table(
        "devices",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("hardware_profile", sa.String(length=64), nullable=False),
        sa.Column("firmware_version", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fleet_id", sa.Uuid(), nullable=True),
        sa.Column("desired_model_id", sa.Uuid(), nullable=True),
        sa.Column("desired_model_version", sa.String(length=64), nullable=True),
        sa.Column("reported_model_id", sa.Uuid(), nullable=True),
        sa.Column("reported_model_version", sa.String(length=64), nullable=True),
        sa.Column("last_install_error", sa.Text(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("anomaly_count", sa.Integer(), nullable=False),
        sa.Column("last_anomaly_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_anomaly_kind", sa.String(length=64), nullable=True),
        sa.Column("last_anomaly_severity", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_devices")),
        postgresql_with={"fillfactor": "70"},
    )
    op.create_index(
        op.f("ix_devices_tenant_id_fleet_id"), "devices", ["tenant_id", "fleet_id"], unique=False
    )
    op.create_index(
        op.f("ix_devices_tenant_id_reported_model_version"),
        "devices",
        ["tenant_id", "reported_model_version"],
        unique=False,
    )
    op.create_index(
        op.f("ix_devices_tenant_id_serial_number"),
        "devices",
        ["tenant_id", "serial_number"],
        unique=True,
        postgresql_ops={"serial_number": "varchar_pattern_ops"},
    )
    op.create_index(
        op.f("ix_devices_tenant_id_status"), "devices", ["tenant_id", "status"], unique=False
    )
    op.create_table(
        "fleet_device_counts",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("fleet_id", sa.Uuid(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "fleet_id", "dimension", "key", name=op.f("pk_fleet_device_counts")
        ),
    )
    op.create_table(
        "fleets",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("current_model_id", sa.Uuid(), nullable=True),
        sa.Column("current_model_version", sa.String(length=64), nullable=True),
        sa.Column("rollout_count", sa.Integer(), nullable=False),
        sa.Column("rollout_status", sa.String(length=16), nullable=True),
        sa.Column("rollout_model_id", sa.Uuid(), nullable=True),
        sa.Column("rollout_model_version", sa.String(length=64), nullable=True),
        sa.Column("rollout_previous_model_version", sa.String(length=64), nullable=True),
        sa.Column("rollout_phases", sa.JSON(), nullable=True),
        sa.Column("rollout_phase", sa.Integer(), nullable=True),
        sa.Column("rollout_percent", sa.Integer(), nullable=True),
        sa.Column("rollout_failure_threshold", sa.Float(), nullable=True),
        sa.Column("rollout_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollout_targeted", sa.Integer(), nullable=True),
        sa.Column("rollout_succeeded", sa.Integer(), nullable=True),
        sa.Column("rollout_failed", sa.Integer(), nullable=True),
        sa.Column("last_rollout_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_rollout_model_version", sa.String(length=64), nullable=True),
        sa.Column("last_rollout_reason", sa.Text(), nullable=True),
        sa.Column("last_rollout_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_fleets")),
        postgresql_with={"fillfactor": "70"},
    )
    op.create_index(op.f("ix_fleets_tenant_id_name"), "fleets", ["tenant_id", "name"], unique=True)
    op.create_table(
        "models",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("input_signature", sa.JSON(), nullable=False),
        sa.Column("output_signature", sa.JSON(), nullable=False),
        sa.Column("artifact_name", sa.String(length=255), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("deprecation_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_models")),
        postgresql_with={"fillfactor": "70"},
    )
    op.create_index(
        op.f("ix_models_tenant_id_name_model_version"),
        "models",
        ["tenant_id", "name", "model_version"],
        unique=True,
    )
    op.create_index(
        op.f("ix_models_tenant_id_stage"), "models", ["tenant_id", "stage"], unique=False
    )
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projection_checkpoints")),
    )
    op.create_table(
        "timeline",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("aggregate_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("aggregate_type", sa.String(length=16), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "aggregate_id", "version", name=op.f("pk_timeline")),
    )
    op.create_index(
        op.f("ix_timeline_tenant_id_position"), "timeline", ["tenant_id", "position"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_timeline_tenant_id_position"), table_name="timeline")
    op.drop_table("timeline")
    op.drop_table("projection_checkpoints")
    op.drop_index(op.f("ix_models_tenant_id_stage"), table_name="models")
    op.drop_index(op.f("ix_models_tenant_id_name_model_version"), table_name="models")
    op.drop_table("models")
    op.drop_index(op.f("ix_fleets_tenant_id_name"), table_name="fleets")
    op.drop_table("fleets")
    op.drop_table("fleet_device_counts")
    op.drop_index(op.f("ix_devices_tenant_id_status"), table_name="devices")
    op.drop_index(
        op.f("ix_devices_tenant_id_serial_number"),
        table_name="devices",
        postgresql_ops={"serial_number": "varchar_pattern_ops"},
    )
    op.drop_index(op.f("ix_devices_tenant_id_reported_model_version"), table_name="devices")
    op.drop_index(op.f("ix_devices_tenant_id_fleet_id"), table_name="devices")
    op.drop_table("devices")
    op.drop_index(op.f("ix_dead_letters_projection_position"), table_name="dead_letters")
    op.drop_table("dead_letters")
