"""Order devices by serial number through their index, in the same order on every database.

The serial index used ``varchar_pattern_ops`` so that prefix search could use
it under any collation, but such an index cannot serve ``ORDER BY``: every
devices page sorted all of the tenant's devices. The column now has the "C"
collation on PostgreSQL (byte order, which is also SQLite's BINARY order), and
an index with the default operator class then serves both prefix search and
keyset pages. SQLite needs no change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_devices_tenant_id_serial_number"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="devices")
    op.alter_column(
        "devices",
        "serial_number",
        type_=sa.String(length=64, collation="C"),
        existing_type=sa.String(length=64),
        existing_nullable=False,
    )
    op.create_index(INDEX, "devices", ["tenant_id", "serial_number"], unique=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="devices")
    op.alter_column(
        "devices",
        "serial_number",
        type_=sa.String(length=64),
        existing_type=sa.String(length=64, collation="C"),
        existing_nullable=False,
    )
    op.create_index(
        INDEX,
        "devices",
        ["tenant_id", "serial_number"],
        unique=True,
        postgresql_ops={"serial_number": "varchar_pattern_ops"},
    )
