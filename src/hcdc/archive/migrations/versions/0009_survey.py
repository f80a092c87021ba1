"""Calibrator vetting (oi_calibrators in JSDC v2 columns, oi_bad_calibrators) and survey
tracking (surveys, survey_targets) for issue 14.

Revision ID: 0009_survey
Revises: 0007_interferometry (the lead re-chains at merge)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_survey"
down_revision = "0007_interferometry"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "oi_calibrators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("ra", sa.Float(), nullable=False),
        sa.Column("dec", sa.Float(), nullable=False),
        sa.Column("ldd", sa.Float(), nullable=True),
        sa.Column("e_ldd", sa.Float(), nullable=True),
        sa.Column("ldd_chi2", sa.Float(), nullable=True),
        sa.Column("udd", JSON, nullable=True),
        sa.Column("main_id_simbad", sa.String(length=128), nullable=True),
        sa.Column("sptype_simbad", sa.String(length=64), nullable=True),
        sa.Column("objtypes_simbad", sa.Text(), nullable=True),
        sa.Column("calflag", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oi_calibrators")),
        sa.UniqueConstraint("name_key", name=op.f("uq_oi_calibrators_name_key")),
    )
    op.create_table(
        "oi_bad_calibrators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("ra", sa.Float(), nullable=True),
        sa.Column("dec", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oi_bad_calibrators")),
        sa.UniqueConstraint("name_key", name=op.f("uq_oi_bad_calibrators_name_key")),
    )
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_surveys_group_id_groups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("name", name=op.f("uq_surveys_name")),
    )
    op.create_table(
        "survey_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("ra", sa.Float(), nullable=True),
        sa.Column("dec", sa.Float(), nullable=True),
        sa.Column("due", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("planned_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_targets_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_targets")),
        sa.UniqueConstraint("survey_id", "name_key", name=op.f("uq_survey_targets_key")),
    )
    op.create_index("ix_survey_targets_survey_id", "survey_targets", ["survey_id"])


def downgrade() -> None:
    op.drop_index("ix_survey_targets_survey_id", table_name="survey_targets")
    op.drop_table("survey_targets")
    op.drop_table("surveys")
    op.drop_table("oi_bad_calibrators")
    op.drop_table("oi_calibrators")
