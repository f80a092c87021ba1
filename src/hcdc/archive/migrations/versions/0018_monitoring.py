"""Astrometric calibration monitoring: measured True North and plate-scale values with their
sources (hcdc.archive.astrometry_monitor).

Revision ID: 0018_monitoring
Revises: 0017_product_sources
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_monitoring"
down_revision = "0017_product_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "astrometric_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("filter", sa.String(length=64), nullable=True),
        sa.Column("epoch", sa.Date(), nullable=False),
        sa.Column("true_north_deg", sa.Float(), nullable=True),
        sa.Column("true_north_err_deg", sa.Float(), nullable=True),
        sa.Column("plate_scale_mas", sa.Float(), nullable=True),
        sa.Column("plate_scale_err_mas", sa.Float(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "true_north_deg IS NOT NULL OR plate_scale_mas IS NOT NULL",
            name=op.f("ck_astrometric_calibrations_some_value"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_astrometric_calibrations_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_astrometric_calibrations")),
    )
    op.create_index(
        "ix_astrometric_calibrations_instrument_arm_epoch",
        "astrometric_calibrations",
        ["instrument", "arm", "epoch"],
    )


def downgrade() -> None:
    op.drop_index("ix_astrometric_calibrations_instrument_arm_epoch", table_name="astrometric_calibrations")
    op.drop_table("astrometric_calibrations")
