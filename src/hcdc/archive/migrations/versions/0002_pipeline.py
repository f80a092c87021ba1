"""Pipeline tables: jobs, products (versions), product files, provenance.

Revision ID: 0002_pipeline
Revises: 0001_initial
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_pipeline"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    """JSON text on SQLite, JSONB on PostgreSQL (as hcdc.archive.models.JSONType)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("inputs", _json(), nullable=True),
        sa.Column("workflow", sa.String(length=64), nullable=True),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log", sa.Text(), nullable=True),
        sa.Column("summary", _json(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name=op.f("ck_jobs_state_valid")
        ),
        sa.CheckConstraint("max_attempts >= 1", name=op.f("ck_jobs_max_attempts_positive")),
        sa.CheckConstraint("dataset_id IS NOT NULL OR inputs IS NOT NULL", name=op.f("ck_jobs_has_input")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_jobs_dataset_id_datasets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_state_priority", "jobs", ["state", "priority", "id"])
    op.create_index("ix_jobs_dataset_id", "jobs", ["dataset_id"])

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lineage", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("product_type", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("recipe", sa.String(length=64), nullable=False),
        sa.Column("recipe_version", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=64), nullable=True),
        sa.Column("workflow_version", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("storage_dir", sa.Text(), nullable=False),
        sa.Column("summary", _json(), nullable=True),
        sa.Column("rerun_of_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_products_version_positive")),
        sa.CheckConstraint("status IN ('done', 'failed')", name=op.f("ck_products_status_valid")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_products_dataset_id_datasets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_products_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rerun_of_id"],
            ["products.id"],
            name=op.f("fk_products_rerun_of_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("lineage", "version", name="uq_products_lineage_version"),
        sa.UniqueConstraint("job_id", "node", name="uq_products_job_node"),
    )
    op.create_index(
        "ux_products_current_lineage",
        "products",
        ["lineage"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )
    op.create_index("ix_products_dataset_id", "products", ["dataset_id"])
    op.create_index("ix_products_level_type", "products", ["level", "product_type"])
    op.create_index("ix_products_target", "products", ["target"])

    op.create_table(
        "product_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_files_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_files")),
        sa.UniqueConstraint("product_id", "path", name="uq_product_files_path"),
    )
    op.create_index("ix_product_files_sha256", "product_files", ["sha256"])

    op.create_table(
        "provenance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("recipe", sa.String(length=64), nullable=False),
        sa.Column("recipe_version", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=64), nullable=True),
        sa.Column("workflow_version", sa.String(length=32), nullable=True),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("software_version", sa.String(length=64), nullable=True),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("started", sa.String(length=40), nullable=True),
        sa.Column("finished", sa.String(length=40), nullable=True),
        sa.Column("record", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_provenance_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provenance")),
        sa.UniqueConstraint("product_id", name="uq_provenance_product_id"),
        sa.UniqueConstraint("record_id", name="uq_provenance_record_id"),
    )


def downgrade() -> None:
    op.drop_table("provenance")
    op.drop_table("product_files")
    op.drop_index("ux_products_current_lineage", table_name="products")
    op.drop_table("products")
    op.drop_table("jobs")
