"""Interferometry (issue 14): OiDB collections with embargo and data rights, delegations per
collection / programme / sub-programme, person validations of OIFITS files, and the granule
columns proposal_subid (HIERARCH SPICADB-ID) and bib_reference (Level 3).

Revision ID: 0007_interferometry
Revises: 0004_granules
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_interferometry"
down_revision = "0006_tdb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oi_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("coltype", sa.String(length=32), nullable=False),
        sa.Column("embargo_months", sa.Integer(), nullable=False),
        sa.Column("release_date", sa.DateTime(), nullable=True),
        sa.Column("data_rights", sa.String(length=16), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        sa.Column("calib_level", sa.Integer(), nullable=True),
        sa.Column("match_facility", sa.String(length=64), nullable=True),
        sa.Column("match_instrument", sa.String(length=64), nullable=True),
        sa.Column("match_progid", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("embargo_months >= 0", name=op.f("ck_oi_collections_embargo_months_positive")),
        sa.CheckConstraint(
            "data_rights IN ('public', 'secure', 'proprietary')", name=op.f("ck_oi_collections_data_rights")
        ),
        sa.CheckConstraint(
            "calib_level IS NULL OR calib_level BETWEEN 0 AND 3",
            name=op.f("ck_oi_collections_calib_level_range"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_oi_collections_owner_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oi_collections")),
        sa.UniqueConstraint("name", name="uq_oi_collections_name"),
    )
    op.create_table(
        "oi_delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grantee_user_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("progid", sa.String(length=64), nullable=True),
        sa.Column("proposal_subid", sa.String(length=64), nullable=True),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["oi_collections.id"],
            name=op.f("fk_oi_delegations_collection_id_oi_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grantee_user_id"],
            ["users.id"],
            name=op.f("fk_oi_delegations_grantee_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oi_delegations")),
    )
    op.create_index("ix_oi_delegations_grantee_user_id", "oi_delegations", ["grantee_user_id"], unique=False)
    op.create_table(
        "oi_validations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("new_file_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("validated_at", sa.DateTime(), nullable=False),
        sa.Column("spica_quality", sa.Integer(), nullable=False),
        sa.Column("quality_level", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "spica_quality BETWEEN 1 AND 4", name=op.f("ck_oi_validations_spica_quality_range")
        ),
        sa.CheckConstraint(
            "quality_level BETWEEN 0 AND 5", name=op.f("ck_oi_validations_quality_level_range")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_oi_validations_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["new_file_id"],
            ["files.id"],
            name=op.f("fk_oi_validations_new_file_id_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oi_validations_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oi_validations")),
    )
    op.create_index("ix_oi_validations_file_id", "oi_validations", ["file_id"], unique=False)
    with op.batch_alter_table("granules") as batch:
        batch.add_column(sa.Column("proposal_subid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("bib_reference", sa.String(length=32), nullable=True))
    op.create_index("ix_granules_obs_collection", "granules", ["obs_collection"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_granules_obs_collection", table_name="granules")
    with op.batch_alter_table("granules") as batch:
        batch.drop_column("bib_reference")
        batch.drop_column("proposal_subid")
    op.drop_index("ix_oi_validations_file_id", table_name="oi_validations")
    op.drop_table("oi_validations")
    op.drop_index("ix_oi_delegations_grantee_user_id", table_name="oi_delegations")
    op.drop_table("oi_delegations")
    op.drop_table("oi_collections")
