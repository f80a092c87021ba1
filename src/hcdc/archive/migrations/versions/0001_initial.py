"""Initial catalogue schema: files (versions), quarantine, datasets, associations.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    """JSON text on SQLite, JSONB on PostgreSQL (as hcdc.archive.models.JSONType)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("mode", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("night", sa.Date(), nullable=True),
        sa.Column("setup", sa.String(length=255), nullable=True),
        sa.Column("prog_id", sa.String(length=64), nullable=True),
        sa.Column("ob_id", sa.BigInteger(), nullable=True),
        sa.Column("n_files", sa.Integer(), nullable=False),
        sa.Column("role_counts", _json(), nullable=False),
        sa.Column("mjd_start", sa.Float(), nullable=True),
        sa.Column("mjd_end", sa.Float(), nullable=True),
        sa.Column("exposure_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("associated_at", sa.DateTime(), nullable=True),
        sa.Column("association_warnings", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("key", name=op.f("uq_datasets_key")),
    )
    op.create_index("ix_datasets_instrument", "datasets", ["instrument"])
    op.create_index("ix_datasets_night", "datasets", ["night"])
    op.create_index("ix_datasets_target", "datasets", ["target"])

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    op.create_index("ix_quarantine_reason_code", "quarantine", ["reason_code"])
    # one row per (path, content); NULL sha256 (unreadable bytes) counts as one content
    op.create_index(
        "ux_quarantine_path_sha256", "quarantine", ["path", sa.text("coalesce(sha256, '')")], unique=True
    )

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(), nullable=True),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        sa.Column("technique", sa.String(length=64), nullable=True),
        sa.Column("file_class", sa.String(length=32), nullable=True),
        sa.Column("date_obs", sa.DateTime(), nullable=True),
        sa.Column("mjd_obs", sa.Float(), nullable=True),
        sa.Column("mjd_end", sa.Float(), nullable=True),
        sa.Column("night", sa.Date(), nullable=True),
        sa.Column("dit", sa.Float(), nullable=True),
        sa.Column("ndit", sa.Integer(), nullable=True),
        sa.Column("filter", sa.String(length=64), nullable=True),
        sa.Column("coronagraph", sa.String(length=64), nullable=True),
        sa.Column("nd_filter", sa.String(length=32), nullable=True),
        sa.Column("readout_mode", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("ra", sa.Float(), nullable=True),
        sa.Column("dec", sa.Float(), nullable=True),
        sa.Column("prog_id", sa.String(length=64), nullable=True),
        sa.Column("ob_id", sa.BigInteger(), nullable=True),
        sa.Column("ob_name", sa.String(length=128), nullable=True),
        sa.Column("tpl_id", sa.String(length=128), nullable=True),
        sa.Column("tpl_start", sa.String(length=32), nullable=True),
        sa.Column("tpl_expno", sa.Integer(), nullable=True),
        sa.Column("tpl_nexp", sa.Integer(), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("seeing", sa.Float(), nullable=True),
        sa.Column("tau0", sa.Float(), nullable=True),
        sa.Column("wind_speed", sa.Float(), nullable=True),
        sa.Column("wavelength_min", sa.Float(), nullable=True),
        sa.Column("wavelength_max", sa.Float(), nullable=True),
        sa.Column("extra", _json(), nullable=False),
        sa.Column("header", sa.JSON(), nullable=False),  # plain json on PostgreSQL (see models)
        sa.Column("is_calibration", sa.Boolean(), nullable=False),
        sa.Column("dataset_key", sa.String(length=255), nullable=True),
        sa.Column("sequence_role", sa.String(length=32), nullable=True),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("storage IN ('reference', 'copy')", name=op.f("ck_files_storage_mode")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_files_version_positive")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_files_dataset_id_datasets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("path", "version", name="uq_files_path_version"),
        sa.UniqueConstraint("sha256", name=op.f("uq_files_sha256")),
    )
    op.create_index("ix_files_calib_lookup", "files", ["is_calibration", "instrument", "night"])
    op.create_index("ix_files_dataset_id", "files", ["dataset_id"])
    op.create_index("ix_files_dataset_key", "files", ["dataset_key"])
    op.create_index("ix_files_instrument_night", "files", ["instrument", "night"])
    op.create_index("ix_files_night", "files", ["night"])
    op.create_index("ix_files_target", "files", ["target"])
    op.create_index("ix_files_type", "files", ["type"])
    # at most one current version per path
    op.create_index(
        "ux_files_current_path",
        "files",
        ["path"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )

    op.create_table(
        "missing_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("need", sa.String(length=64), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_missing_calibrations_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missing_calibrations")),
        sa.UniqueConstraint("dataset_id", "need", name="uq_missing_calibrations_need"),
    )
    op.create_table(
        "associations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("need", sa.String(length=64), nullable=False),
        sa.Column("calibration_file_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("delta_hours", sa.Float(), nullable=True),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calibration_file_id"], ["files.id"], name=op.f("fk_associations_calibration_file_id_files")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_associations_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_associations")),
        sa.UniqueConstraint("dataset_id", "need", "calibration_file_id", name="uq_associations_choice"),
    )
    op.create_index("ix_associations_calibration_file_id", "associations", ["calibration_file_id"])


def downgrade() -> None:
    op.drop_table("associations")
    op.drop_table("missing_calibrations")
    op.drop_table("files")
    op.drop_table("quarantine")
    op.drop_table("datasets")
