"""RDI reference libraries built from the archive's Level 1 products (hcdc.archive.rdi_library):
the library (set-up, selection, FITS file, provenance) and its frames (source product, frame,
correlation, conditions).

Revision ID: 0022_rdi_library
Revises: 0021_fair_share
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022_rdi_library"
down_revision = "0021_fair_share"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rdi_libraries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("science_product_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("instrument", sa.String(length=32), nullable=True),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("filter", sa.String(length=64), nullable=True),
        sa.Column("coronagraph", sa.String(length=64), nullable=True),
        sa.Column("dit_min_s", sa.Float(), nullable=True),
        sa.Column("dit_max_s", sa.Float(), nullable=True),
        sa.Column("annulus_inner_px", sa.Float(), nullable=False),
        sa.Column("annulus_outer_px", sa.Float(), nullable=False),
        sa.Column("n_candidates", sa.Integer(), nullable=False),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("built_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("record", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["science_product_id"],
            ["products.id"],
            name=op.f("fk_rdi_libraries_science_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rdi_libraries")),
        sa.UniqueConstraint("name", name="uq_rdi_libraries_name"),
    )
    op.create_index("ix_rdi_libraries_science_product_id", "rdi_libraries", ["science_product_id"])
    op.create_table(
        "rdi_library_frames",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("library_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("correlation", sa.Float(), nullable=False),
        sa.Column("mjd", sa.Float(), nullable=True),
        sa.Column("strehl", sa.Float(), nullable=True),
        sa.Column("seeing_arcsec", sa.Float(), nullable=True),
        sa.Column("tau0_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["library_id"],
            ["rdi_libraries.id"],
            name=op.f("fk_rdi_library_frames_library_id_rdi_libraries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_rdi_library_frames_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rdi_library_frames")),
        sa.UniqueConstraint("library_id", "rank", name="uq_rdi_library_frames_rank"),
    )
    op.create_index("ix_rdi_library_frames_product_id", "rdi_library_frames", ["product_id"])


def downgrade() -> None:
    op.drop_index("ix_rdi_library_frames_product_id", table_name="rdi_library_frames")
    op.drop_table("rdi_library_frames")
    op.drop_index("ix_rdi_libraries_science_product_id", table_name="rdi_libraries")
    op.drop_table("rdi_libraries")
