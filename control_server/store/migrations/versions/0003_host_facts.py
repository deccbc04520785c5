"""Each host's last facts in the store (issue 10 §2).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "host_facts",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("gathered_at", sa.Float(), nullable=False),
        sa.Column("job_id", sa.Integer()),
        sa.PrimaryKeyConstraint("host", name="pk_host_facts"),
    )


def downgrade() -> None:
    op.drop_table("host_facts")
