"""Batches of jobs and per-job logs: the ``batches`` table, ``jobs.batch_id``, the ``job_log``
table (hcdc.archive.pipeline_models, hcdc.pipeline.operations.batches).

Revision ID: 0016_batches
Revises: 0015_obscore_fov
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016_batches"
down_revision = "0015_obscore_fov"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    """JSON text on SQLite, JSONB on PostgreSQL (as hcdc.archive.models.JSONType)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("workflow", sa.String(length=64), nullable=True),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("selection", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_user_id"], ["users.id"], name=op.f("fk_batches_owner_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index("ix_batches_owner_user_id", "batches", ["owner_user_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_batch_id_batches"), "batches", ["batch_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_jobs_batch_id", ["batch_id"])
    op.create_table(
        "job_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "level IN ('debug', 'info', 'warning', 'error', 'traceback')", name=op.f("ck_job_log_level_valid")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_log_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_log")),
    )
    op.create_index("ix_job_log_job_id", "job_log", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_job_log_job_id", table_name="job_log")
    op.drop_table("job_log")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_batch_id")
        batch.drop_constraint(op.f("fk_jobs_batch_id_batches"), type_="foreignkey")
        batch.drop_column("batch_id")
    op.drop_index("ix_batches_owner_user_id", table_name="batches")
    op.drop_table("batches")
