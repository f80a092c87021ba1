"""Level 0 granules from ObsPortal (hcdc.archive.obsportal): granules without a file
(``file_id`` nullable), with ObsPortal's exposure id (``obs_id``, unique per collection), its
link (``access_url``), instrument mode, stations and the programme's PI / co-Is (``datapi``).

Revision ID: 0019_obsportal
Revises: 0018_monitoring
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_obsportal"
down_revision = "0018_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("granules") as batch:
        batch.alter_column("file_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("obs_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("access_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("instrument_mode", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("interferometer_stations", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("datapi", sa.Text(), nullable=True))
    op.create_index(
        "uq_granules_obs_collection_obs_id", "granules", ["obs_collection", "obs_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_granules_obs_collection_obs_id", table_name="granules")
    op.execute("DELETE FROM granules WHERE file_id IS NULL")
    with op.batch_alter_table("granules") as batch:
        batch.drop_column("datapi")
        batch.drop_column("interferometer_stations")
        batch.drop_column("instrument_mode")
        batch.drop_column("access_url")
        batch.drop_column("obs_id")
        batch.alter_column("file_id", existing_type=sa.Integer(), nullable=False)
