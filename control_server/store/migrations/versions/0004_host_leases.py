"""Host leases: which control server watches each host's hypervisor events (issue 10 §2).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "host_leases",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("lease_expires", sa.Float(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_host_leases"),
    )


def downgrade() -> None:
    op.drop_table("host_leases")
