"""Product sources: the catalogued files a product without a dataset was made from (an OIFITS
model fit), so that it follows their access rules (rule R17, hcdc.archive.access).

Revision ID: 0017_product_sources
Revises: 0016_batches
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_product_sources"
down_revision = "0016_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_sources",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_sources_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_product_sources_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("product_id", "file_id", name=op.f("pk_product_sources")),
    )
    op.create_index("ix_product_sources_file_id", "product_sources", ["file_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_product_sources_file_id", table_name="product_sources")
    op.drop_table("product_sources")
