"""Host identity: which daemon process wrote a host's report, on which machine, and how far its
clock was from the store's.

`instance` (a random id per daemon start) and `machine` (/etc/machine-id) tell a daemon's own
previous incarnation (killed and restarted on the same machine) from another daemon given the
same `[supervisor] host`; `clock_offset` (seconds the host's clock was ahead of the store's at
the report) lets a reader turn the host's own times (heartbeats) into ages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("instance", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("machine", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("clock_offset", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("clock_offset")
        batch.drop_column("machine")
        batch.drop_column("instance")
