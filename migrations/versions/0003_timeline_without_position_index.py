"""Drop the timeline's (tenant, position) index: nothing reads the timeline by position.

Every timeline query names one aggregate (``read_api.readers.timeline``: its
events by version, or their count), which the primary key serves. The
position index was never used, yet every projected event paid for it: a
second B-tree insert per row, about a tenth of what PostgreSQL spends on a
catch-up, on the table that grows fastest.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEX = "ix_timeline_tenant_id_position"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="timeline")


def downgrade() -> None:
    op.create_index(INDEX, "timeline", ["tenant_id", "position"], unique=False)
