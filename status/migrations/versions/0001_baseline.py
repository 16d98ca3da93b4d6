"""Baseline: the history as proofwatch wrote it before versioned migrations.

Idempotent on purpose: a history.db written by an older proofwatch (no alembic_version table)
already has some of these tables, perhaps without the newest columns; those are added
(nullable, or with their default) and every row is kept. A new database gets them all.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.Column], list[str]]]:
    """(table, columns, indexed columns): frozen here, never derived from the live models."""
    S, I, F, J = sa.String, sa.Integer, sa.Float, sa.JSON

    def D() -> sa.DateTime:  # noqa: N802 - aware, as sqlmodel declares datetime fields
        return sa.DateTime(timezone=True)
    return [
        ("runs", [
            sa.Column("run_id", S(), primary_key=True),
            sa.Column("job", S(), nullable=False),
            sa.Column("host", S(), nullable=False, server_default=""),
            sa.Column("state", S(), nullable=False),
            sa.Column("started_at", D(), nullable=False),
            sa.Column("ended_at", D()),
            sa.Column("pid", I()),
            sa.Column("pid_created", F()),
            sa.Column("command", S(), nullable=False, server_default=""),
            sa.Column("exit_code", I()),
            sa.Column("signal", S()),
            sa.Column("error", S()),
            sa.Column("run_dir", S(), nullable=False, server_default=""),
            sa.Column("phase", S(), nullable=False, server_default=""),
            sa.Column("message", S(), nullable=False, server_default=""),
            sa.Column("progress", J()),
            sa.Column("proofs", J()),
            sa.Column("last_heartbeat_at", D()),
            sa.Column("last_progress_at", D()),
        ], ["job", "started_at"]),
        ("events", [
            sa.Column("id", I(), primary_key=True, autoincrement=True),
            sa.Column("ts", D(), nullable=False),
            sa.Column("job", S(), nullable=False),
            sa.Column("run_id", S()),
            sa.Column("kind", S(), nullable=False),
            sa.Column("from_state", S()),
            sa.Column("to_state", S()),
            sa.Column("reason", S(), nullable=False, server_default=""),
        ], ["ts", "job", "run_id"]),
        ("alerts", [
            sa.Column("id", S(), primary_key=True),
            sa.Column("key", S(), nullable=False),
            sa.Column("job", S()),
            sa.Column("run_id", S()),
            sa.Column("severity", S(), nullable=False),
            sa.Column("title", S(), nullable=False),
            sa.Column("detail", S(), nullable=False),
            sa.Column("first_seen", D(), nullable=False),
            sa.Column("last_seen", D(), nullable=False),
            sa.Column("count", I(), nullable=False, server_default="1"),
            sa.Column("resolved_at", D()),
            sa.Column("resolution", S()),
            sa.Column("acknowledged_at", D()),
        ], ["key"]),
        ("outbox", [
            sa.Column("id", I(), primary_key=True, autoincrement=True),
            sa.Column("created_at", D(), nullable=False),
            sa.Column("sink", S(), nullable=False),
            sa.Column("payload", J()),
            sa.Column("attempts", I(), nullable=False, server_default="0"),
            sa.Column("next_attempt_at", D()),
            sa.Column("delivered_at", D()),
            sa.Column("last_error", S()),
            sa.Column("duration_ms", F()),
        ], ["created_at", "sink", "next_attempt_at", "delivered_at"]),
        ("notify_state", [
            sa.Column("id", I(), primary_key=True, autoincrement=False),
            sa.Column("updated_at", D(), nullable=False),
            sa.Column("state", J()),
        ], []),
        ("host_samples", [
            sa.Column("id", I(), primary_key=True, autoincrement=True),
            sa.Column("ts", D(), nullable=False),
            sa.Column("cpu_pct", F(), nullable=False),
            sa.Column("load1", F(), nullable=False),
            sa.Column("mem_pct", F(), nullable=False),
            sa.Column("swap_pct", F(), nullable=False),
            sa.Column("disk", J()),
            sa.Column("temp_c", F()),
            sa.Column("score", I(), nullable=False),
            sa.Column("label", S(), nullable=False),
        ], ["ts"]),
    ]


def upgrade() -> None:
    have = sa.inspect(op.get_bind())
    for name, columns, indexed in _tables():
        if not have.has_table(name):
            op.create_table(name, *columns)
        else:
            present = {c["name"] for c in have.get_columns(name)}
            missing = [c for c in columns if c.name not in present and not c.primary_key]
            if missing:
                with op.batch_alter_table(name) as batch:
                    for column in missing:
                        column.nullable = True if column.server_default is None else column.nullable
                        batch.add_column(column)
        indexes = {i["name"] for i in have.get_indexes(name)} if have.has_table(name) else set()
        for column in indexed:
            if f"ix_{name}_{column}" not in indexes:
                op.create_index(f"ix_{name}_{column}", name, [column])


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone (drop the database instead)")
