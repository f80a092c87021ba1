"""The expected-contrast model fitted on the catalogue's own products flags the one product
whose contrast is much worse than its conditions predict, in ``hcdc monitor expected`` and in
the quality-control report (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

from typer.testing import CliRunner

from archive.contrast_world import DEGRADED, LAW, NIGHT0, build_contrast_world
from hcdc.archive.access import local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.monitoring_report import monitoring_report, problem_rows
from hcdc.archive.telemetry import expected_contrast
from hcdc.cli import app


def test_degraded_product_flagged(tmp_path, database_url):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        ids = build_contrast_world(catalogue)
        bad = ids["level2"][DEGRADED]
        with catalogue.engine.connect() as conn:
            result = expected_contrast(conn, local_operator())
            assert result["flagged"] == [bad]
            (model_02, model_05) = (m["model"] for m in result["models"])
            assert model_05["features"] == ["seeing", "tau0", "field_rotation"] and model_05["products"] == 14
            for name in ("seeing", "tau0", "field_rotation"):
                assert abs(model_05["coefficients"][name] - LAW[name]) < 0.3
            night = NIGHT0 + dt.timedelta(days=DEGRADED)
            report = monitoring_report(conn, local_operator(), night, night, catalogue.storage_root)
        (entry,) = report["datasets"]
        assert [f["product_id"] for f in entry["contrast_worse_than_expected"]] == [bad]
        (row,) = [r for r in problem_rows(report) if r["category"] == "contrast_worse_than_expected"]
        assert row["item"] == f"p{bad}" and 4 < row["value"] < 16 and row["limit"] == 3.0
        assert "at 0.2 arcsec" in row["detail"] and report["nights"][0]["contrast_problems"] == 1
        root = ["--root", str(catalogue.settings.root)]
        shown = CliRunner().invoke(app, ["monitor", "expected", "--json", *root])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["flagged"] == [bad]
        text = CliRunner().invoke(app, ["monitor", "expected", "--flagged", *root])
        assert text.exit_code == 0 and f"p{bad}" in text.stdout and "flagged: p" in text.stdout
        # a stricter factor and scatter limit flag nothing
        strict = CliRunner().invoke(app, ["monitor", "expected", "--factor", "20", "--json", *root])
        assert json.loads(strict.stdout)["flagged"] == []
        refused = CliRunner().invoke(app, ["monitor", "expected", "--factor", "0.5", *root])
        assert refused.exit_code != 0 and "--factor" in refused.output
    finally:
        catalogue.close()


def test_programme_overview(tmp_path, database_url):
    import numpy as np

    from archive.contrast_world import N_PRODUCTS, PROGRAMMES
    from hcdc.archive.access import load_principal
    from hcdc.archive.accounts import add_user
    from hcdc.archive.programme_overview import programme_overview

    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        known = build_contrast_world(catalogue)
        with catalogue.engine.begin() as conn:
            add_user(conn, local_operator(), "stranger")
        with catalogue.engine.connect() as conn:
            entries = programme_overview(conn, local_operator())
            stranger = load_principal(conn, "stranger")
            hidden = programme_overview(conn, stranger, now=dt.datetime(2025, 6, 1))
            only = programme_overview(conn, local_operator(), PROGRAMMES[1])
        assert [e["prog_id"] for e in entries] == list(PROGRAMMES) and hidden == []
        assert [e["prog_id"] for e in only] == [PROGRAMMES[1]]
        for k, e in enumerate(entries):
            mine = list(range(k, N_PRODUCTS, 2))
            assert e["datasets"] == len(mine) == len(e["nights"])
            assert e["nights"][0] == (NIGHT0 + dt.timedelta(days=k)).isoformat()
            assert e["products"] == {"1": len(mine), "2": len(mine)} and e["level1_with_conditions"] == len(
                mine
            )
            assert e["conditions"]["seeing_arcsec"] == np.median([known["seeing"][i] for i in mine])
            (c02,) = [c for c in e["contrast"] if c["separation_arcsec"] == 0.2]
            values = [known["contrast_02"][i] for i in mine]
            assert c02["median"] == np.median(values) and c02["best"] == min(values)
        root = ["--root", str(catalogue.settings.root)]
        shown = CliRunner().invoke(app, ["monitor", "programmes", "--json", *root])
        assert shown.exit_code == 0 and len(json.loads(shown.stdout)["programmes"]) == 2
        text = CliRunner().invoke(app, ["monitor", "programmes", *root])
        assert text.exit_code == 0 and PROGRAMMES[0] in text.stdout
        missing = CliRunner().invoke(app, ["monitor", "programmes", "--programme", "9999.Z-0000", *root])
        assert missing.exit_code != 0 and "9999.Z-0000" in missing.output
    finally:
        catalogue.close()


def test_star_magnitude_from_the_target_data_base(tmp_path, database_url):
    """Products whose contrast grows 0.3 dex per H magnitude of their star, the magnitudes in
    the Target Data Base (targets named like the products' OBJECT): the archive rows carry the
    H magnitude (filter DB_H23 -> mag_h), the model fits the slope, and only the degraded
    product is flagged; the CLI shows the term."""
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        ids = build_contrast_world(catalogue, magnitude_slope=0.3, n_products=16)
        bad = ids["level2"][DEGRADED]
        with catalogue.engine.connect() as conn:
            result = expected_contrast(conn, local_operator())
        by_id = {p["product_id"]: p for p in result["products"]}
        for k, level2 in enumerate(ids["level2"]):
            assert by_id[level2]["star_magnitude"] == ids["mag_h"][k]
            assert by_id[level2]["magnitude_band"] == "mag_h"
        model = result["models"][1]["model"]  # 0.5"
        assert model["features"] == ["seeing", "tau0", "field_rotation", "star_magnitude"]
        assert abs(model["coefficients"]["star_magnitude"] - 0.3) < 0.05 and model["scatter_dex"] < 0.1
        assert result["flagged"] == [bad]
        root = ["--root", str(catalogue.settings.root)]
        text = CliRunner().invoke(app, ["monitor", "expected", *root])
        assert text.exit_code == 0 and "(m - 5)" in text.stdout and " H" in text.stdout
    finally:
        catalogue.close()


def test_models_per_group_keep_rdi_apart(tmp_path, database_url):
    """The same world with every other product made an RDI product one decade deeper: the
    archive fits one model per group (set-up and algorithm), each product is predicted from its
    own group, and still only the degraded product is flagged; the CLI names the groups."""
    from sqlalchemy import select, update

    from hcdc.archive.pipeline_models import Product

    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        ids = build_contrast_world(catalogue)
        bad = ids["level2"][DEGRADED]
        rdi = [pid for k, pid in enumerate(ids["level2"]) if k % 2 == 1 and pid != bad]
        with catalogue.engine.begin() as conn:
            for pid in rdi:
                summary = dict(conn.scalar(select(Product.summary).where(Product.id == pid)))
                summary["algorithm"] = "rdi"
                summary["contrast_at"] = [
                    {**c, "contrast": [v / 10.0 for v in c["contrast"]]} for c in summary["contrast_at"]
                ]
                conn.execute(update(Product).where(Product.id == pid).values(summary=summary))
        with catalogue.engine.connect() as conn:
            result = expected_contrast(conn, local_operator())
        groups = {g["group"]: g["products"] for g in result["groups"]}
        # the test world's datasets name no arm: "?"
        assert set(groups) == {"SPHERE/? DB_H23 pca_annular", "SPHERE/? DB_H23 rdi"}, groups
        assert sum(groups.values()) == len(ids["level2"]) and groups["SPHERE/? DB_H23 rdi"] == len(rdi)
        assert [m["group"] for m in result["models"]].count("SPHERE/? DB_H23 rdi") == len(
            result["separations"]
        )
        assert result["flagged"] == [bad]
        by_id = {p["product_id"]: p for p in result["products"]}
        assert by_id[rdi[0]]["expected"]["separations"][0]["fitted_on"] == len(rdi) - 1
        text = CliRunner().invoke(app, ["monitor", "expected", "--root", str(catalogue.settings.root)])
        assert text.exit_code == 0 and 'SPHERE/? DB_H23 rdi, 0.2"' in text.stdout, text.stdout
    finally:
        catalogue.close()
