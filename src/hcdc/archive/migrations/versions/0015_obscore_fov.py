"""ObsCore: an index on s_fov, so that SIA's POS prefilter reads the widest field (MAX(s_fov))
in O(log n) and widens its search by it (hcdc.archive.sia.max_field_deg).

Revision ID: 0015_obscore_fov
Revises: 0010_web
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0015_obscore_fov"
down_revision = "0010_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_obscore_s_fov", "obscore", ["s_fov"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_obscore_s_fov", table_name="obscore")
