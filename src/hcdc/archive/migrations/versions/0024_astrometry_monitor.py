"""Astrometric calibration fields measured automatically: the reference lists the data-centre
team registers per field (hcdc.archive.astrometry_monitor.AstrometricReferenceField).

Revision ID: 0024_astrometry_monitor
Revises: 0023_search_index
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_astrometry_monitor"
down_revision = "0023_search_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "astrometric_reference_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("ra_deg", sa.Float(), nullable=False),
        sa.Column("dec_deg", sa.Float(), nullable=False),
        sa.Column("radius_arcsec", sa.Float(), nullable=False),
        sa.Column("catalogue_path", sa.Text(), nullable=False),
        sa.Column("catalogue_sha256", sa.String(length=64), nullable=False),
        sa.Column("n_stars", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("radius_arcsec > 0", name=op.f("ck_astrometric_reference_fields_radius_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_astrometric_reference_fields")),
        sa.UniqueConstraint("name", name=op.f("uq_astrometric_reference_fields_name")),
    )


def downgrade() -> None:
    op.drop_table("astrometric_reference_fields")
