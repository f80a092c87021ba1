"""Trigram indexes for the substring searches on PostgreSQL (issue 11).

The portal, the REST API and the CLI search files, datasets and products by a part of the target
name: ``lower(target) LIKE '%part%'`` (``hcdc.archive.search``), which no B-tree can serve. With
``pg_trgm``, a GIN index on ``lower(target)`` serves it, also with a bound pattern. SQLite has no
such index (its searches scan; a laptop catalogue is small), and a PostgreSQL without the
``pg_trgm`` extension (it ships with PostgreSQL's contrib) keeps working without the indexes.

Revision ID: 0023_search_index
Revises: 0022_rdi_library
Create Date: 2026-12-07
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0023_search_index"
down_revision = "0022_rdi_library"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

#: (index, table): a GIN trigram index on lower(target) of each searched table
TRIGRAM_INDEXES = (
    ("ix_files_target_trgm", "files"),
    ("ix_datasets_target_trgm", "datasets"),
    ("ix_products_target_trgm", "products"),
)


def _has_trigrams(bind: sa.engine.Connection) -> bool:
    """Whether pg_trgm is installed, or can be (contrib present and the right to create it)."""
    installed = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
    if installed:
        return True
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    if not available:
        log.warning("pg_trgm is not available: target searches will scan (install PostgreSQL's contrib)")
        return False
    bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _has_trigrams(bind):
        return
    for name, table in TRIGRAM_INDEXES:
        op.create_index(
            name,
            table,
            [sa.text("lower(target) gin_trgm_ops")],
            postgresql_using="gin",
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name, _table in TRIGRAM_INDEXES:
        op.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
