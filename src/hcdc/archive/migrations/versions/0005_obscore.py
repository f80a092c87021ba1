"""ObsCore 1.1 rows (hcdc.archive.obscore) and asynchronous TAP jobs (hcdc.archive.tap_jobs).

On PostgreSQL the pg_sphere extension is created (ADQL geometry) with a GiST index on the
position of every ObsCore row; the migration fails with a clear message when the extension is
not installed (Debian: apt-get install postgresql-15-pgsphere; .ci/setup-vo does it).

Revision ID: 0005_obscore
Revises: 0004_granules
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_obscore"
down_revision = "0004_granules"
branch_labels = None
depends_on = None


def _create_pg_sphere() -> None:
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_sphere'")
    ).scalar()
    if not available:
        raise RuntimeError(
            "PostgreSQL has no pg_sphere extension, which the VO services need for ADQL geometry: "
            "install it on the database server (Debian: apt-get install postgresql-15-pgsphere, "
            "or run .ci/setup-vo) and run 'hcdc init' again"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        _create_pg_sphere()
    op.create_table(
        "obscore",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hcdc_kind", sa.String(length=16), nullable=False),
        sa.Column("hcdc_key", sa.Integer(), nullable=False),
        sa.Column("hcdc_file_id", sa.Integer(), nullable=True),
        sa.Column("hcdc_product_id", sa.Integer(), nullable=True),
        sa.Column("hcdc_dataset_id", sa.Integer(), nullable=True),
        sa.Column("hcdc_prog_id", sa.String(length=64), nullable=True),
        sa.Column("hcdc_filter", sa.String(length=64), nullable=True),
        sa.Column("hcdc_product_type", sa.String(length=64), nullable=True),
        sa.Column("dataproduct_type", sa.String(length=16), nullable=False),
        sa.Column("dataproduct_subtype", sa.String(length=64), nullable=True),
        sa.Column("calib_level", sa.Integer(), nullable=False),
        sa.Column("obs_collection", sa.String(length=128), nullable=False),
        sa.Column("obs_id", sa.String(length=255), nullable=False),
        sa.Column("obs_creation_date", sa.DateTime(), nullable=True),
        sa.Column("obs_release_date", sa.DateTime(), nullable=True),
        sa.Column("access_format", sa.String(length=64), nullable=False),
        sa.Column("access_estsize", sa.BigInteger(), nullable=True),
        sa.Column("target_name", sa.String(length=128), nullable=True),
        sa.Column("s_ra", sa.Float(), nullable=True),
        sa.Column("s_dec", sa.Float(), nullable=True),
        sa.Column("s_fov", sa.Float(), nullable=True),
        sa.Column("s_region", sa.Text(), nullable=True),
        sa.Column("s_resolution", sa.Float(), nullable=True),
        sa.Column("s_xel1", sa.BigInteger(), nullable=True),
        sa.Column("s_xel2", sa.BigInteger(), nullable=True),
        sa.Column("t_min", sa.Float(), nullable=True),
        sa.Column("t_max", sa.Float(), nullable=True),
        sa.Column("t_exptime", sa.Float(), nullable=True),
        sa.Column("t_resolution", sa.Float(), nullable=True),
        sa.Column("t_xel", sa.BigInteger(), nullable=True),
        sa.Column("em_min", sa.Float(), nullable=True),
        sa.Column("em_max", sa.Float(), nullable=True),
        sa.Column("em_res_power", sa.Float(), nullable=True),
        sa.Column("em_xel", sa.BigInteger(), nullable=True),
        sa.Column("o_ucd", sa.String(length=64), nullable=True),
        sa.Column("pol_states", sa.String(length=64), nullable=True),
        sa.Column("pol_xel", sa.BigInteger(), nullable=True),
        sa.Column("facility_name", sa.String(length=64), nullable=True),
        sa.Column("instrument_name", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["hcdc_file_id"], ["files.id"], name=op.f("fk_obscore_hcdc_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["hcdc_product_id"],
            ["products.id"],
            name=op.f("fk_obscore_hcdc_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obscore")),
        sa.UniqueConstraint("hcdc_kind", "hcdc_key", name="uq_obscore_source"),
    )
    op.create_index("ix_obscore_s_dec_s_ra", "obscore", ["s_dec", "s_ra"], unique=False)
    op.create_index("ix_obscore_t_min", "obscore", ["t_min"], unique=False)
    op.create_index("ix_obscore_target_name", "obscore", ["target_name"], unique=False)
    op.create_index("ix_obscore_file_id", "obscore", ["hcdc_file_id"], unique=False)
    op.create_index("ix_obscore_product_id", "obscore", ["hcdc_product_id"], unique=False)
    if postgres:
        # ADQL CONTAINS(POINT(s_ra, s_dec), CIRCLE/POLYGON) is translated to this very expression
        op.execute(
            "CREATE INDEX ix_obscore_spoint ON obscore USING gist (spoint(radians(s_ra), radians(s_dec)))"
        )
    op.create_table(
        "tap_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        sa.Column("owner_name", sa.String(length=128), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("creation_time", sa.DateTime(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("execution_duration", sa.Integer(), nullable=False),
        sa.Column("destruction", sa.DateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_path", sa.Text(), nullable=True),
        sa.Column("result_media_type", sa.String(length=128), nullable=True),
        sa.Column("result_size", sa.BigInteger(), nullable=True),
        sa.Column("result_rows", sa.Integer(), nullable=True),
        sa.Column("overflow", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tap_jobs")),
    )
    op.create_index("ix_tap_jobs_owner", "tap_jobs", ["owner_user_id"], unique=False)
    op.create_index("ix_tap_jobs_destruction", "tap_jobs", ["destruction"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tap_jobs_destruction", table_name="tap_jobs")
    op.drop_index("ix_tap_jobs_owner", table_name="tap_jobs")
    op.drop_table("tap_jobs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_obscore_spoint")
    op.drop_index("ix_obscore_product_id", table_name="obscore")
    op.drop_index("ix_obscore_file_id", table_name="obscore")
    op.drop_index("ix_obscore_target_name", table_name="obscore")
    op.drop_index("ix_obscore_t_min", table_name="obscore")
    op.drop_index("ix_obscore_s_dec_s_ra", table_name="obscore")
    op.drop_table("obscore")
