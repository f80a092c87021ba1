"""The monitoring (quality-control) report: missing calibrations and conditions per dataset.

Known truth: a simulated IRDIS night (two OBs, DB_H23 DBI then BB_H CI, with SPARTA files)
whose five BB_H lamp flats are removed before ingestion, so the CI dataset, and only it, lacks
its flat; the conditions' medians are compared with the simulator's true atmosphere. Real
data: the IFS night of real headers, which has no SPECPOS / IFU flat / detector flats and no
SPARTA file.
"""

from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from hcdc.archive.access import ANONYMOUS, local_operator
from hcdc.archive.ingest import ingest
from hcdc.archive.monitoring_report import Thresholds, monitoring_report, problem_rows
from hcdc.archive.telemetry import dataset_time_span
from hcdc.cli import app

from .night import build_night
from .test_associations import IFS_YJ_FLAT_LAMPS

NIGHT = dt.date(2018, 11, 30)


@pytest.fixture(scope="module")
def night_without_ci_flat(tmp_path_factory):
    from hcdc.instruments.sphere.irdis.simulate import simulate_irdis_night

    night = simulate_irdis_night(tmp_path_factory.mktemp("sim") / "raw", seed=21, ao_telemetry=True)
    removed = []
    for path in sorted(night.out_dir.glob("*.fits")):
        header = fits.getheader(path)
        if (
            header.get("HIERARCH ESO DPR TYPE") == "FLAT,LAMP"
            and header.get("HIERARCH ESO INS COMB IFLT") == "BB_H"
        ):
            path.unlink()
            removed.append(path.name)
    assert len(removed) == 5
    return night


def _true_median(night, conn, dataset_id, key):
    """Median of the simulator's true ``key`` over the dataset's time span (30 s grid)."""
    telemetry = night.ao_telemetry
    start, end, _ = dataset_time_span(conn, dataset_id)
    grid = np.arange(start, end, 30.0 / 86400.0)
    return float(np.median(telemetry.truth_at(grid)[key]))


def test_report_finds_the_removed_flat_and_the_true_conditions(catalogue, night_without_ci_flat):
    night = night_without_ci_flat
    ingest(catalogue, [night.out_dir], workers=1)
    root = catalogue.storage_root
    with catalogue.engine.connect() as conn:
        report = monitoring_report(conn, local_operator(), NIGHT, NIGHT, root, Thresholds(0.0, 99.0, 0.0))
        entries = report["datasets"]
        assert len(entries) == 2
        ci = next(e for e in entries if "BB_H" in (e["setup"] or ""))
        dbi = next(e for e in entries if "DB_H23" in (e["setup"] or ""))
        # the removed lamp flats: the CI dataset lacks its flat, the DBI one lacks nothing
        assert [m["need"] for m in ci["missing_calibrations"]] == ["flat"]
        assert "FLAT" in ci["missing_calibrations"][0]["reason"]
        assert dbi["missing_calibrations"] == []
        truth = {
            name: {key: _true_median(night, conn, e["dataset_id"], key) for key in ("strehl", "wind_m_s")}
            for name, e in (("ci", ci), ("dbi", dbi))
        }
    for name, e in (("ci", ci), ("dbi", dbi)):
        c = e["conditions"]
        assert c["telemetry_files"] >= 1 and c["samples"] > 10
        # SPARTA's estimates are the truth with 2 % (Strehl) and 5 % (wind) noise per sample
        assert c["strehl_median"] == pytest.approx(truth[name]["strehl"], rel=0.02)
        assert c["wind_median_m_s"] == pytest.approx(truth[name]["wind_m_s"], rel=0.05)
        assert 0.3 < c["seeing_zenith_median_arcsec"] < 2.0 and 1e-3 < c["tau0_zenith_median_s"] < 2e-2
        assert c["dimm_seeing_median_arcsec"] is not None  # TEL AMBI FWHM of the simulated headers
        assert e["conditions_outside"] == []  # thresholds nothing can fail
    assert report["nights"] == [
        {
            "night": "2018-11-30",
            "datasets": 2,
            "missing_calibrations": 1,
            "bad_conditions": 0,
            "no_telemetry": 0,
            "failed_jobs": 0,
            "centring_fallbacks": 0,
            "contrast_problems": 0,
        }
    ]
    rows = problem_rows(report)
    # only the removed flat is missing; both datasets also lack the optional distortion map and
    # their FLUX frames (ND filter) fall back to a DARK, as the simulated calibration plan has
    # no DARK,BACKGROUND with their ND: those rows do not depend on the removal
    assert [(r["dataset_id"], r["category"], r["item"]) for r in rows] == [
        (dbi["dataset_id"], "optional_calibration", "distortion"),
        (dbi["dataset_id"], "calibration_fallback", "background:dit=4,nd_filter=ND_2.0"),
        (ci["dataset_id"], "missing_calibration", "flat"),
        (ci["dataset_id"], "optional_calibration", "distortion"),
        (ci["dataset_id"], "calibration_fallback", "background:dit=8,nd_filter=ND_3.5"),
    ]
    assert rows[2]["detail"] == "5 FLAT file(s) but none with filter=BB_H (at least 2 needed)"

    # a Strehl limit between the two datasets' measured medians flags the lower one only
    low, high = sorted((ci, dbi), key=lambda e: e["conditions"]["strehl_median"])
    limit = (low["conditions"]["strehl_median"] + high["conditions"]["strehl_median"]) / 2
    assert high["conditions"]["strehl_median"] - low["conditions"]["strehl_median"] > 0.005
    # the truth orders them the same way
    by_id = {ci["dataset_id"]: truth["ci"], dbi["dataset_id"]: truth["dbi"]}
    assert by_id[low["dataset_id"]]["strehl"] < by_id[high["dataset_id"]]["strehl"]
    with catalogue.engine.connect() as conn:
        flagged = monitoring_report(conn, local_operator(), NIGHT, NIGHT, root, Thresholds(limit, 99.0, 0.0))
        strict = monitoring_report(conn, local_operator(), NIGHT, NIGHT, root, Thresholds(0.99, 0.1, 1.0))
    outside = {e["dataset_id"]: e["conditions_outside"] for e in flagged["datasets"]}
    assert [o["quantity"] for o in outside[low["dataset_id"]]] == ["strehl"]
    assert outside[low["dataset_id"]][0]["value"] == pytest.approx(low["conditions"]["strehl_median"])
    assert outside[high["dataset_id"]] == []
    for e in strict["datasets"]:
        assert [o["quantity"] for o in e["conditions_outside"]] == [
            "strehl",
            "seeing_zenith_arcsec",
            "tau0_zenith_s",
        ]
    assert strict["nights"][0]["bad_conditions"] == 2


def test_report_respects_access_rights(catalogue, night_without_ci_flat):
    ingest(catalogue, [night_without_ci_flat.out_dir], workers=1)
    with catalogue.engine.connect() as conn:
        # in 2019 the 2018 programme was still proprietary: anonymous sees none of its datasets
        hidden = monitoring_report(
            conn, ANONYMOUS, NIGHT, NIGHT, catalogue.storage_root, now=dt.datetime(2019, 1, 1)
        )
        public = monitoring_report(
            conn, ANONYMOUS, NIGHT, NIGHT, catalogue.storage_root, now=dt.datetime(2026, 1, 1)
        )
        other_nights = monitoring_report(
            conn, local_operator(), dt.date(2018, 12, 1), dt.date(2018, 12, 31), catalogue.storage_root
        )
        with pytest.raises(ValueError, match="before it starts"):
            monitoring_report(conn, local_operator(), NIGHT, dt.date(2018, 11, 1), catalogue.storage_root)
    assert hidden["datasets"] == [] and hidden["nights"] == []
    assert len(public["datasets"]) == 2
    assert all(e["conditions"]["samples"] > 0 for e in public["datasets"])
    assert other_nights["datasets"] == []


def test_monitor_report_command_and_csv(catalogue, night_without_ci_flat, tmp_path):
    ingest(catalogue, [night_without_ci_flat.out_dir], workers=1)
    root = ["--root", str(catalogue.settings.root)]
    runner = CliRunner()
    out = tmp_path / "qc.csv"
    result = runner.invoke(
        app,
        [
            "monitor",
            "report",
            "--night",
            "2018-11-30",
            "--json",
            "--csv",
            str(out),
            "--strehl-min",
            "0.99",
            *root,
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["thresholds"]["strehl_min"] == 0.99 and len(payload["datasets"]) == 2
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in payload["problems"]]
    kinds = sorted(
        (r["category"], r["item"]) for r in rows if r["category"] in ("conditions", "missing_calibration")
    )
    assert kinds == [("conditions", "strehl"), ("conditions", "strehl"), ("missing_calibration", "flat")]
    assert {r["limit"] for r in rows if r["category"] == "conditions"} == {"0.99"}
    text = runner.invoke(app, ["monitor", "report", "--from", "2018-11-01", "--to", "2018-11-30", *root])
    assert text.exit_code == 0, text.output
    assert "missing_calibration flat" in text.stdout
    both = runner.invoke(app, ["monitor", "report", "--night", "2018-11-30", "--from", "2018-11-01", *root])
    assert both.exit_code == 1 and "not both" in both.output
    backwards = runner.invoke(app, ["monitor", "report", "--from", "2018-12-01", "--to", "2018-11-01", *root])
    assert backwards.exit_code == 1 and "before" in backwards.output
    nothing = runner.invoke(app, ["monitor", "report", *root])
    assert nothing.exit_code == 1 and "--night" in nothing.output


def test_report_on_the_real_ifs_night(catalogue, sphere_headers, tmp_path):
    """Real headers: the IFS sequence lacks SPECPOS, the IFU flat and the four YJ detector flats
    (as the association test finds), and has no SPARTA telemetry -- both reported."""
    build_night(sphere_headers, tmp_path / "night")
    ingest(catalogue, [tmp_path / "night"], workers=1)
    with catalogue.engine.connect() as conn:
        report = monitoring_report(
            conn, local_operator(), dt.date(2020, 3, 7), dt.date(2020, 3, 7), catalogue.storage_root
        )
    (entry,) = report["datasets"]
    expected = {"specpos", "ifu_flat", *(f"detector_flat:{lamp}" for lamp in IFS_YJ_FLAT_LAMPS)}
    assert {m["need"] for m in entry["missing_calibrations"]} == expected
    assert entry["conditions"]["samples"] == 0 and entry["conditions"]["strehl_median"] is None
    # the real headers' DIMM seeing is still there
    assert 0.3 < entry["conditions"]["dimm_seeing_median_arcsec"] < 3.0
    categories = [r["category"] for r in problem_rows(report)]
    assert categories.count("missing_calibration") == len(expected) and categories.count("no_telemetry") == 1


def test_report_lists_failed_jobs_until_a_run_succeeds(catalogue, night_without_ci_flat):
    from hcdc.pipeline.operations.jobs import claim_job, complete_job, fail_job, queue_job

    ingest(catalogue, [night_without_ci_flat.out_dir], workers=1)
    root = catalogue.storage_root
    with catalogue.engine.connect() as conn:
        before = monitoring_report(conn, local_operator(), NIGHT, NIGHT, root)
    ci = next(e for e in before["datasets"] if "BB_H" in e["setup"])
    assert all(e["failed_jobs"] == [] for e in before["datasets"])
    job = queue_job(catalogue.engine, dataset_id=ci["dataset_id"], workflow="irdis-level1")
    assert claim_job(catalogue.engine, "w1", ids=[job]).id == job
    assert fail_job(catalogue.engine, job, "w1", "Traceback ...\nValueError: no FLAT for BB_H") == "failed"
    with catalogue.engine.connect() as conn:
        failed = monitoring_report(conn, local_operator(), NIGHT, NIGHT, root)
        # jobs are visible to their owner and staff only: the public report does not list them
        public = monitoring_report(conn, ANONYMOUS, NIGHT, NIGHT, root, now=dt.datetime(2026, 1, 1))
    entry = next(e for e in failed["datasets"] if e["dataset_id"] == ci["dataset_id"])
    assert [(j["job_id"], j["workflow"], j["error"]) for j in entry["failed_jobs"]] == [
        (job, "irdis-level1", "ValueError: no FLAT for BB_H")
    ]
    assert failed["nights"][0]["failed_jobs"] == 1
    assert [r["item"] for r in problem_rows(failed) if r["category"] == "failed_job"] == [f"j{job}"]
    assert all(e["failed_jobs"] == [] for e in public["datasets"])
    # a later successful run of the same workflow repairs it
    again = queue_job(catalogue.engine, dataset_id=ci["dataset_id"], workflow="irdis-level1")
    assert claim_job(catalogue.engine, "w1", ids=[again]).id == again
    assert complete_job(catalogue.engine, again, "w1")
    with catalogue.engine.connect() as conn:
        repaired = monitoring_report(conn, local_operator(), NIGHT, NIGHT, root)
    assert all(e["failed_jobs"] == [] for e in repaired["datasets"])
