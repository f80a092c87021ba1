"""ObsCore rows for every granule, Level 0 observation logs without a file included
(hcdc.archive.obscore): the row's own link (``hcdc_access_url``: the exposure's page at its
source, http(s) only; NULL: the DataLink document, as before) and the granule's declared data
rights (``hcdc_data_rights``: secure / proprietary until the release date; NULL: proprietary).

Existing file-less granules get their rows from ``hcdc vo rebuild-obscore`` (run it once after
the upgrade); imports, collection changes, validations and publications keep them in sync.

Revision ID: 0020_obscore_l0
Revises: 0019_obsportal
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_obscore_l0"
down_revision = "0019_obsportal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("obscore") as batch:
        batch.add_column(sa.Column("hcdc_access_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("hcdc_data_rights", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("obscore") as batch:
        batch.drop_column("hcdc_data_rights")
        batch.drop_column("hcdc_access_url")
