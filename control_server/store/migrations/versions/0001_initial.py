"""The first schema: jobs, job_hosts, events, tokens, host_events, instances.

Revision ID: 0001
Revises:
Create Date: 2026-05-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("limit_pattern", sa.Text()),
        sa.Column("check_mode", sa.Boolean(), nullable=False),
        sa.Column("vars", sa.Text(), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("inventory", sa.Text(), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float()),
        sa.Column("finished_at", sa.Float()),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("stopped_early", sa.Text()),
        sa.Column("owner_host", sa.String(255)),
        sa.Column("owner_pid", sa.Integer()),
        sa.Column("owner_boot", sa.String(64)),
        sa.Column("owner_start", sa.String(64)),
        sa.Column("heartbeat_at", sa.Float()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])


def _job_hosts_and_events() -> None:
    op.create_table(
        "job_hosts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float()),
        sa.Column("finished_at", sa.Float()),
        sa.Column("result", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_hosts_job_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "host", name="pk_job_hosts"),
    )
    op.create_table(
        "events",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_events_job_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_events"),
    )


def _later_tables() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used_at", sa.Float()),
        sa.Column("revoked_at", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("name", name="uq_tokens_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "host_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(255)),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("received_by", sa.String(255)),
        sa.PrimaryKeyConstraint("id", name="pk_host_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_host_events_host_time", "host_events", ["host", "time"])
    op.create_table(
        "instances",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("uuid", sa.String(64)),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("host", "name", name="pk_instances"),
    )


def upgrade() -> None:
    _jobs()
    _job_hosts_and_events()
    _later_tables()


def downgrade() -> None:
    for table in ("instances", "host_events", "tokens", "events", "job_hosts", "jobs"):
        op.drop_table(table)
