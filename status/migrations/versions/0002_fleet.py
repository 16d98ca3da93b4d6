"""Fleet: every row names its host; the hosts' reports and the fleet's claims.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("events", "alerts", "host_samples"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("host", sa.String(), nullable=False, server_default=""))
        op.create_index(f"ix_{table}_host", table, ["host"])
    op.create_index("ix_runs_host_job_started_at", "runs", ["host", "job", "started_at"])
    op.create_table(
        "hosts",
        sa.Column("host", sa.String(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("pid", sa.Integer()),
        sa.Column("version", sa.String(), nullable=False, server_default=""),
        sa.Column("report_every", sa.Float(), nullable=False, server_default="10"),
        sa.Column("health", sa.JSON()),
        sa.Column("jobs", sa.JSON()),
        sa.Column("active_alerts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "claims",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True)),
        sa.Column("detail", sa.String(), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("claims")
    op.drop_table("hosts")
    op.drop_index("ix_runs_host_job_started_at", "runs")
    for table in ("events", "alerts", "host_samples"):
        op.drop_index(f"ix_{table}_host", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("host")
