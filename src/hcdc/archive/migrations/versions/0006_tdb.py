"""The Target Data Base (hcdc.archive.tdb_models): targets, aliases, the internal name
dictionary, the SIMBAD cache, target links of files/datasets/products, observations ->
reductions -> detections, and candidates.

Revision ID: 0006_tdb
Revises: 0004_granules
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_tdb"
down_revision = "0005_obscore"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tdb_name_dictionary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("normalized", sa.String(length=128), nullable=False),
        sa.Column("canonical", sa.String(length=128), nullable=False),
        sa.Column(
            "values",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_name_dictionary")),
        sa.UniqueConstraint("normalized", name=op.f("uq_tdb_name_dictionary_normalized")),
    )
    op.create_table(
        "tdb_simbad_cache",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("normalized", sa.String(length=128), nullable=False),
        sa.Column("query", sa.String(length=128), nullable=False),
        sa.Column(
            "answer",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_simbad_cache")),
        sa.UniqueConstraint("normalized", name=op.f("uq_tdb_simbad_cache_normalized")),
    )
    op.create_table(
        "tdb_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("ra_deg", sa.Float(), nullable=True),
        sa.Column("dec_deg", sa.Float(), nullable=True),
        sa.Column("pmra_masyr", sa.Float(), nullable=True),
        sa.Column("pmdec_masyr", sa.Float(), nullable=True),
        sa.Column("parallax_mas", sa.Float(), nullable=True),
        sa.Column("parallax_err_mas", sa.Float(), nullable=True),
        sa.Column("rv_kms", sa.Float(), nullable=True),
        sa.Column("mag_b", sa.Float(), nullable=True),
        sa.Column("mag_v", sa.Float(), nullable=True),
        sa.Column("mag_r", sa.Float(), nullable=True),
        sa.Column("mag_i", sa.Float(), nullable=True),
        sa.Column("mag_j", sa.Float(), nullable=True),
        sa.Column("mag_h", sa.Float(), nullable=True),
        sa.Column("mag_k", sa.Float(), nullable=True),
        sa.Column("spectral_type", sa.String(length=64), nullable=True),
        sa.Column("age_myr", sa.Float(), nullable=True),
        sa.Column("age_err_myr", sa.Float(), nullable=True),
        sa.Column(
            "sources",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("simbad_id", sa.String(length=128), nullable=True),
        sa.Column("resolved", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "resolved IN ('unresolved', 'simbad', 'dictionary', 'import', 'manual')",
            name=op.f("ck_tdb_targets_resolved_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_targets")),
    )
    op.create_index("ix_tdb_targets_name", "tdb_targets", ["name"], unique=False)
    op.create_table(
        "tdb_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "statistic",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("grouped_by", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('undetermined', 'bound', 'background')", name=op.f("ck_tdb_candidates_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["tdb_targets.id"],
            name=op.f("fk_tdb_candidates_target_id_tdb_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_candidates")),
        sa.UniqueConstraint("target_id", "label", name="uq_tdb_candidates_label"),
    )
    op.create_table(
        "tdb_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("date_jd", sa.Float(), nullable=True),
        sa.Column("instrument", sa.String(length=64), nullable=True),
        sa.Column("telescope", sa.String(length=64), nullable=True),
        sa.Column("survey", sa.String(length=128), nullable=True),
        sa.Column("filter", sa.String(length=64), nullable=True),
        sa.Column("true_north_deg", sa.Float(), nullable=True),
        sa.Column("true_north_err_deg", sa.Float(), nullable=True),
        sa.Column("parallactic_angle_deg", sa.Float(), nullable=True),
        sa.Column("pixel_scale_mas", sa.Float(), nullable=True),
        sa.Column("pixel_scale_err_mas", sa.Float(), nullable=True),
        sa.Column("setup", sa.String(length=255), nullable=True),
        sa.Column("prog_id", sa.String(length=64), nullable=True),
        sa.Column("release_date", sa.DateTime(), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column(
            "extra",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_tdb_observations_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["tdb_targets.id"],
            name=op.f("fk_tdb_observations_target_id_tdb_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_observations")),
        sa.UniqueConstraint("uid", name=op.f("uq_tdb_observations_uid")),
    )
    op.create_index("ix_tdb_observations_dataset_id", "tdb_observations", ["dataset_id"], unique=False)
    op.create_index("ix_tdb_observations_target_id", "tdb_observations", ["target_id"], unique=False)
    op.create_table(
        "tdb_target_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("normalized", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["tdb_targets.id"],
            name=op.f("fk_tdb_target_aliases_target_id_tdb_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_target_aliases")),
        sa.UniqueConstraint("normalized", name=op.f("uq_tdb_target_aliases_normalized")),
    )
    op.create_index("ix_tdb_target_aliases_target_id", "tdb_target_aliases", ["target_id"], unique=False)
    op.create_table(
        "tdb_target_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("object_name", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "kind IN ('file', 'dataset', 'product')", name=op.f("ck_tdb_target_links_kind_valid")
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["tdb_targets.id"],
            name=op.f("fk_tdb_target_links_target_id_tdb_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_target_links")),
        sa.UniqueConstraint("kind", "object_id", name="uq_tdb_target_links_object"),
    )
    op.create_index("ix_tdb_target_links_target_id", "tdb_target_links", ["target_id"], unique=False)
    op.create_table(
        "tdb_reductions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("observation_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("validated", sa.Boolean(), nullable=False),
        sa.Column("software", sa.String(length=64), nullable=True),
        sa.Column("software_version", sa.String(length=64), nullable=True),
        sa.Column("algorithm", sa.String(length=64), nullable=True),
        sa.Column("date", sa.DateTime(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column(
            "detection_limits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "extra",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["observation_id"],
            ["tdb_observations.id"],
            name=op.f("fk_tdb_reductions_observation_id_tdb_observations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_tdb_reductions_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_reductions")),
        sa.UniqueConstraint("uid", name=op.f("uq_tdb_reductions_uid")),
    )
    op.create_index("ix_tdb_reductions_observation_id", "tdb_reductions", ["observation_id"], unique=False)
    op.create_index("ix_tdb_reductions_product_id", "tdb_reductions", ["product_id"], unique=False)
    op.create_table(
        "tdb_detections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("reduction_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("wavelength_um", sa.Float(), nullable=True),
        sa.Column("filter", sa.String(length=64), nullable=True),
        sa.Column("magnitude", sa.Float(), nullable=True),
        sa.Column("magnitude_err", sa.Float(), nullable=True),
        sa.Column("contrast", sa.Float(), nullable=True),
        sa.Column("contrast_err", sa.Float(), nullable=True),
        sa.Column("snr", sa.Float(), nullable=True),
        sa.Column("dra_mas", sa.Float(), nullable=True),
        sa.Column("dra_err_mas", sa.Float(), nullable=True),
        sa.Column("ddec_mas", sa.Float(), nullable=True),
        sa.Column("ddec_err_mas", sa.Float(), nullable=True),
        sa.Column("separation_mas", sa.Float(), nullable=True),
        sa.Column("separation_err_mas", sa.Float(), nullable=True),
        sa.Column("pa_deg", sa.Float(), nullable=True),
        sa.Column("pa_err_deg", sa.Float(), nullable=True),
        sa.Column(
            "extra",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["tdb_candidates.id"],
            name=op.f("fk_tdb_detections_candidate_id_tdb_candidates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reduction_id"],
            ["tdb_reductions.id"],
            name=op.f("fk_tdb_detections_reduction_id_tdb_reductions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tdb_detections")),
        sa.UniqueConstraint("uid", name=op.f("uq_tdb_detections_uid")),
    )
    op.create_index("ix_tdb_detections_candidate_id", "tdb_detections", ["candidate_id"], unique=False)
    op.create_index("ix_tdb_detections_reduction_id", "tdb_detections", ["reduction_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tdb_detections_reduction_id", table_name="tdb_detections")
    op.drop_index("ix_tdb_detections_candidate_id", table_name="tdb_detections")
    op.drop_table("tdb_detections")
    op.drop_index("ix_tdb_reductions_product_id", table_name="tdb_reductions")
    op.drop_index("ix_tdb_reductions_observation_id", table_name="tdb_reductions")
    op.drop_table("tdb_reductions")
    op.drop_index("ix_tdb_target_links_target_id", table_name="tdb_target_links")
    op.drop_table("tdb_target_links")
    op.drop_index("ix_tdb_target_aliases_target_id", table_name="tdb_target_aliases")
    op.drop_table("tdb_target_aliases")
    op.drop_index("ix_tdb_observations_target_id", table_name="tdb_observations")
    op.drop_index("ix_tdb_observations_dataset_id", table_name="tdb_observations")
    op.drop_table("tdb_observations")
    op.drop_table("tdb_candidates")
    op.drop_index("ix_tdb_targets_name", table_name="tdb_targets")
    op.drop_table("tdb_targets")
    op.drop_table("tdb_simbad_cache")
    op.drop_table("tdb_name_dictionary")
