"""Alembic migrations of the hcdc catalogue (run by :func:`hcdc.archive.db.upgrade_schema`)."""
