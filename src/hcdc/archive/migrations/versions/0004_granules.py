"""OiDB granules of OIFITS files (hcdc.archive.granules): one row per target x INSNAME x night
x file version, filled at ingest.

Revision ID: 0004_granules
Revises: 0003_accounts
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_granules"
down_revision = "0003_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "granules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("target_name", sa.Text(), nullable=False),
        sa.Column("s_ra", sa.Float(), nullable=True),
        sa.Column("s_dec", sa.Float(), nullable=True),
        sa.Column("t_exptime", sa.Float(), nullable=True),
        sa.Column("t_min", sa.Float(), nullable=False),
        sa.Column("t_max", sa.Float(), nullable=False),
        sa.Column("em_min", sa.Float(), nullable=True),
        sa.Column("em_max", sa.Float(), nullable=True),
        sa.Column("em_res_power", sa.Float(), nullable=True),
        sa.Column("facility_name", sa.Text(), nullable=True),
        sa.Column("instrument_name", sa.Text(), nullable=False),
        sa.Column("nb_vis", sa.Integer(), nullable=False),
        sa.Column("nb_vis2", sa.Integer(), nullable=False),
        sa.Column("nb_t3", sa.Integer(), nullable=False),
        sa.Column("nb_channels", sa.Integer(), nullable=False),
        sa.Column("night_id", sa.Integer(), nullable=False),
        sa.Column("calib_level", sa.Integer(), nullable=True),
        sa.Column("quality_level", sa.Integer(), nullable=False),
        sa.Column("dataproduct_category", sa.String(length=16), nullable=True),
        sa.Column("progid", sa.String(length=64), nullable=True),
        sa.Column("data_rights", sa.String(length=16), nullable=True),
        sa.Column("obs_release_date", sa.DateTime(), nullable=True),
        sa.Column("obs_collection", sa.String(length=128), nullable=True),
        sa.Column(
            "validation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint("quality_level BETWEEN 0 AND 5", name=op.f("ck_granules_quality_level_range")),
        sa.CheckConstraint(
            "calib_level IS NULL OR calib_level BETWEEN 0 AND 3", name=op.f("ck_granules_calib_level_range")
        ),
        sa.CheckConstraint(
            "data_rights IS NULL OR data_rights IN ('public', 'secure', 'proprietary')",
            name=op.f("ck_granules_data_rights"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_granules_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_granules")),
    )
    op.create_index("ix_granules_file_id", "granules", ["file_id"], unique=False)
    op.create_index("ix_granules_target_name", "granules", ["target_name"], unique=False)
    op.create_index("ix_granules_t_min", "granules", ["t_min"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_granules_t_min", table_name="granules")
    op.drop_index("ix_granules_target_name", table_name="granules")
    op.drop_index("ix_granules_file_id", table_name="granules")
    op.drop_table("granules")
