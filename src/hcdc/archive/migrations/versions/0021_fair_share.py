"""Fair share of the job queue: the ``job_shares`` table (when each job owner was last served,
hcdc.pipeline.operations.jobs.claim_job).

Revision ID: 0021_fair_share
Revises: 0020_obscore_l0
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_fair_share"
down_revision = "0020_obscore_l0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_shares",
        sa.Column("owner_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_claim_at", sa.DateTime(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner_key", name=op.f("pk_job_shares")),
    )


def downgrade() -> None:
    op.drop_table("job_shares")
