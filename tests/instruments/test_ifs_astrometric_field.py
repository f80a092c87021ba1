"""IFS astrometric calibration fields on the IFS Level 1 grid (issue 15): simulated fields with a
known plate scale and True North measured within their errors (errors honest over 12 fields),
the IFS instrument offset (-100.48 deg) in the convention, the recipe ``ifs-astrometric-field``
and workflow ``ifs-astrometry``, and the value stored in the series as IFS and flagged against
the assumed constants (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcdc.archive.access import local_operator
from hcdc.archive.astrometry_monitor import add_measured_calibration, astrometric_series
from hcdc.archive.db import init_data_centre
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs.astrometric_field import (
    IFS_FIELD_SPEC,
    measure_ifs_field,
    simulate_ifs_astrometric_field,
)
from hcdc.instruments.sphere.irdis.astrometric_field import AstrometricFieldError
from hcdc.pipeline.registry import get_recipe, run_recipe
from hcdc.pipeline.workflow import get_workflow
from hcdc.science.simulation.astrometric_field import FieldSpec

#: (seed, true North deg, POSANG deg, plate scale mas/px) of the error-honesty fields
CASES = [(10 + i, -2.1 + 0.06 * i, (-60.0 + 11.0 * i), 7.44 + 0.004 * i) for i in range(12)]


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def test_ifs_fields_known_answer_and_honest_errors(tmp_path):
    pulls_tn, pulls_scale = [], []
    for seed, tn, posang, scale in CASES:
        spec = FieldSpec(**{**IFS_FIELD_SPEC.as_dict(), "scale_mas": scale})
        paths = simulate_ifs_astrometric_field(
            tmp_path / f"f{seed}", spec, seed=seed, true_north_deg=tn, posang_deg=posang
        )
        result = measure_ifs_field(paths["fits"], paths["catalogue"])
        assert result["arm"] == "IFS" and result["filter"] == "OBS_YJ"
        assert result["fit"]["used"] >= 6
        # the fitted rotation holds the instrument offset: rho = POSANG + TN - 100.48
        assert _wrap(
            result["fit"]["rotation_deg"] - (posang + tn + sc.IFS_INSTRUMENT_OFFSET_DEG)
        ) == pytest.approx(_wrap(result["true_north_deg"] - tn), abs=1e-9)
        pulls_tn.append((result["true_north_deg"] - tn) / result["true_north_err_deg"])
        pulls_scale.append((result["plate_scale_mas"] - scale) / result["plate_scale_err_mas"])
    pulls_tn, pulls_scale = np.array(pulls_tn), np.array(pulls_scale)
    # every field within 3.5 errors of its truth; the errors neither far too small nor too large
    assert np.abs(pulls_tn).max() < 3.5 and np.abs(pulls_scale).max() < 3.5, (pulls_tn, pulls_scale)
    assert 0.4 < pulls_tn.std() < 2.0 and 0.4 < pulls_scale.std() < 2.0, (pulls_tn, pulls_scale)


def test_ifs_field_refusals(tmp_path):
    paths = simulate_ifs_astrometric_field(tmp_path / "f", seed=3)
    other = simulate_ifs_astrometric_field(
        tmp_path / "g", FieldSpec(**{**IFS_FIELD_SPEC.as_dict(), "ra0_deg": 10.0, "dec0_deg": -30.0}), seed=4
    )
    with pytest.raises(AstrometricFieldError, match="matched"):
        measure_ifs_field(paths["fits"], other["catalogue"])  # another field's list
    from astropy.io import fits

    with fits.open(paths["fits"], mode="update") as hdul:
        hdul[0].header["HIERARCH ESO INS4 DROT2 MODE"] = "ELEV"
    with pytest.raises(AstrometricFieldError, match="field-tracking"):
        measure_ifs_field(paths["fits"], paths["catalogue"])


def test_ifs_recipe_workflow_and_series(tmp_path, database_url):
    tn = -1.45  # 0.30 deg from the assumed -1.75
    paths = simulate_ifs_astrometric_field(tmp_path / "f", seed=5, true_north_deg=tn, posang_deg=20.0)
    assert get_recipe("ifs-astrometric-field").version == "1.0"
    assert get_recipe("astrometric-field").version == "1.0"  # the IRDIS recipe is unchanged
    workflow = get_workflow("ifs-astrometry")
    assert [n.recipe for n in workflow.nodes] == ["ifs-astrometric-field"]
    result = run_recipe(
        "ifs-astrometric-field",
        {"raw": [paths["fits"]], "reference": paths["catalogue"]},
        [],
        work_dir=tmp_path / "run",
    )
    summary = result.outputs["summary"]
    stars = json.loads(result.outputs["measurement"].read_text())["stars"]
    assert len(stars) == summary["fit"]["matched"]
    assert abs(summary["true_north_deg"] - tn) < 3 * summary["true_north_err_deg"]
    assert abs(summary["plate_scale_mas"] - sc.IFS_PIXEL_SCALE_MAS) < 3 * summary["plate_scale_err_mas"]
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        with catalogue.engine.begin() as conn:
            add_measured_calibration(conn, local_operator(), summary, arm=summary["arm"])
            series = astrometric_series(conn, local_operator(), "SPHERE", "IFS", nsigma=3)
    finally:
        catalogue.close()
    (point,) = series["measurements"]
    assert point["arm"] == "IFS" and point["filter"] == "OBS_YJ"
    assert point["true_north"]["flagged"] and not point["plate_scale"]["flagged"]


def test_cli_simulate_and_measure_ifs(tmp_path, database_url):
    """`hcdc monitor astrometry simulate --arm IFS` then `measure --arm IFS`: stored as IFS, within
    3 errors of the truth; the IRDIS measurement of the same image fails clearly (its expected
    rotation lacks the instrument offset, so nothing matches)."""
    from typer.testing import CliRunner

    from hcdc.cli import app

    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        runner = CliRunner()
        out = tmp_path / "field"
        made = runner.invoke(
            app,
            [
                "monitor",
                "astrometry",
                "simulate",
                str(out),
                "--arm",
                "IFS",
                "--true-north",
                "-1.60",
                "--posang",
                "15",
                "--seed",
                "6",
                "--json",
            ],
        )
        assert made.exit_code == 0, made.output
        paths = json.loads(made.stdout)
        args = ["monitor", "astrometry", "measure", paths["fits"], "--catalogue", paths["catalogue"]]
        root = ["--root", str(catalogue.settings.root)]
        measured = runner.invoke(app, [*args, "--arm", "IFS", "--json", *root])
        assert measured.exit_code == 0, measured.output
        result = json.loads(measured.stdout)
        assert result["arm"] == "IFS" and result["id"] is not None
        assert abs(result["true_north_deg"] - (-1.60)) < 3 * result["true_north_err_deg"]
        assert abs(result["plate_scale_mas"] - sc.IFS_PIXEL_SCALE_MAS) < 3 * result["plate_scale_err_mas"]
        text = runner.invoke(app, [*args, "--arm", "IFS", "--no-store"])
        assert text.exit_code == 0 and "IFS Level 1 grid" in text.output and "assumed 7.460" in text.output
        as_irdis = runner.invoke(app, [*args, "--no-store"])
        assert as_irdis.exit_code != 0 and "matched" in as_irdis.output
        with catalogue.engine.connect() as conn:
            (row,) = astrometric_series(conn, local_operator(), "SPHERE", "IFS")["measurements"]
        assert row["id"] == result["id"] and row["filter"] == "OBS_YJ"
    finally:
        catalogue.close()
