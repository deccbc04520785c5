"""Several control servers (issue 10): servers, the job queue with leases, capacity claims.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _servers_and_queue() -> None:
    op.create_table(
        "servers",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("boot", sa.String(64)),
        sa.Column("proc_start", sa.String(64)),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_servers"),
    )
    op.create_table(
        "job_queue",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("enqueued_at", sa.Float(), nullable=False),
        sa.Column("owner", sa.String(100)),
        sa.Column("lease_expires", sa.Float()),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.Float()),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_queue_job_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", name="pk_job_queue"),
    )
    op.create_index("ix_job_queue_state", "job_queue", ["state", "enqueued_at"])


def _capacity_claims() -> None:
    op.create_table(
        "capacity_claims",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("job_id", sa.Integer()),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("disk_gib", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("released_at", sa.Float()),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_capacity_claims_job_id",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_capacity_claims"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_capacity_claims_host", "capacity_claims", ["host", "state"])


def upgrade() -> None:
    _servers_and_queue()
    _capacity_claims()


def downgrade() -> None:
    for table in ("capacity_claims", "job_queue", "servers"):
        op.drop_table(table)
