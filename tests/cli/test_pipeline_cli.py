"""The pipeline commands through typer's CliRunner (SQLite and PostgreSQL): workflows, run,
reduce --wait, jobs, products, product, provenance, rerun, watch, worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits
from typer.testing import CliRunner

from hcdc.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "240"})


def _ok(result) -> str:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def _json(runner: CliRunner, *args: str):
    return json.loads(_ok(runner.invoke(app, [*args, "--json"])))


@pytest.fixture(scope="module")
def raw_night(tmp_path_factory) -> Path:
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night") / "raw"
    simulate_irdis_night(out, seed=5, scale="small", sequences=DEFAULT_SEQUENCES[:1])
    return out


def test_workflows_and_run_a_recipe_alone(runner, tmp_path):
    from hcdc.science.simulation.adi import simulate_adi_cube

    listed = _json(runner, "workflows")
    names = {w["name"] for w in listed["workflows"]}
    assert {"irdis-l1-l2", "irdis-level1", "l2-user-cube"} <= names
    assert {"level1-irdis", "l2-postprocess", "simulate-irdis"} <= {r["name"] for r in listed["recipes"]}
    assert "irdis-l1-l2" in _ok(runner.invoke(app, ["workflows"]))

    sim = simulate_adi_cube(
        n_frames=16, size=49, fwhm=4.0, rotation=70.0, companions=[(12.0, 300.0, 1e-2)], seed=4
    )
    for name in ("cube", "angles", "psf"):
        fits.writeto(tmp_path / f"{name}.fits", getattr(sim, name))
    args = ["run", "l2-postprocess", "--out", str(tmp_path / "out")]
    args += [f"--input={n}={tmp_path / n}.fits" for n in ("cube", "angles", "psf")]
    result = _json(
        runner,
        *args,
        "-p",
        "ncomp=2",
        "--param",
        "compute_contrast=false",
        "-p",
        "previews=false",
        "-p",
        "angle_convention=hcdc-clockwise",  # the simulation's angles are hcdc clockwise ones
    )
    assert result["status"] == "done" and Path(result["outputs"]["product"]).is_file()
    best = max(result["outputs"]["summary"]["detections"], key=lambda d: d["snr"])
    assert best["separation_px"] == pytest.approx(12.0, abs=1.0)
    record = json.loads(Path(result["provenance"]).read_text())
    assert record["parameters"]["ncomp"] == 2 and record["recipe"] == "l2-postprocess"

    bad = runner.invoke(app, [*args, "-p", "ncmop=2"])
    assert bad.exit_code == 1 and "did you mean 'ncomp'" in bad.stderr


def test_reduce_products_provenance_rerun(runner, raw_night, tmp_path, database_url):
    dc = tmp_path / "dc"
    root = ["--root", str(dc)]
    _ok(runner.invoke(app, ["init", str(dc), "--database", database_url]))
    _ok(runner.invoke(app, ["ingest", str(raw_night), *root]))
    _ok(runner.invoke(app, ["associate", *root]))

    reduced = _json(
        runner, "reduce", "1", "--wait", "--processes", "0", *root,
        "-p", "level2.algorithm=pca", "-p", "level2.ncomp=5", "-p", "crop_radius=44",
        "-p", "compute_contrast=false",
    )  # fmt: skip
    (job,) = reduced["jobs"]
    assert job["state"] == "done" and job["attempts"] == 1
    jobs = _json(runner, "jobs", *root)
    assert jobs["counts"]["done"] == 1
    assert "Traceback" not in _ok(runner.invoke(app, ["jobs", "--id", str(job["id"]), *root]))

    products = _json(runner, "products", *root)["products"]
    assert sorted(p["level"] for p in products) == [1, 2]
    (l2,) = _json(runner, "products", "--level", "2", *root)["products"]
    detail = _json(runner, "product", str(l2["id"]), *root)
    assert detail["previews"] and all(Path(p).suffix == ".png" for p in detail["previews"])
    assert {f["role"] for f in detail["files"]} >= {"product", "preview", "provenance"}
    assert detail["provenance"]["parameters"]["ncomp"] == 5
    best = max(detail["summary"]["detections"], key=lambda d: d["snr"])
    assert best["separation_mas"] == pytest.approx(480.0, abs=12.0)
    text = _ok(runner.invoke(app, ["product", str(l2["id"]), *root]))
    assert "Detections" in text and "level2_pca.fits" in text
    shown = _ok(runner.invoke(app, ["show", f"p{l2['id']}", *root]))  # 'hcdc show' knows products too
    assert "Detections" in shown and f"Product {l2['id']}" in shown and ".png" in shown

    tree = _json(runner, "provenance", str(l2["id"]), *root)
    raw_files = [f for item in tree["parents"][0]["inputs"] for f in item["files"]]
    assert raw_files and all(len(f["sha256"]) == 64 and f["id"] for f in raw_files)
    printed = _ok(runner.invoke(app, ["provenance", str(l2["id"]), *root]))
    assert raw_files[0]["sha256"] in printed and "level1-irdis" in printed

    rerun = _json(runner, "rerun", str(l2["id"]), *root)
    assert rerun["identical_data"] and rerun["original"] == l2["id"]
    versions = _json(runner, "products", "--level", "2", "--all-versions", *root)["products"]
    assert [(p["version"], p["current"]) for p in versions] == [(2, True), (1, False)]

    missing = runner.invoke(app, ["product", "999", *root])
    assert missing.exit_code == 1 and "no product with id 999" in missing.stderr
    both = runner.invoke(app, ["reduce", "1", "--all", *root])
    assert both.exit_code != 0


def test_watch_queues_and_worker_runs(runner, raw_night, tmp_path, database_url):
    dc = tmp_path / "dc"
    root = ["--root", str(dc)]
    _ok(runner.invoke(app, ["init", str(dc), "--database", database_url]))
    polls = _json(runner, "watch", str(raw_night), "--once", *root, "-p", "previews=false")["polls"]
    assert polls[0]["ingested"] > 0 and len(polls[0]["queued_jobs"]) == 1
    # daily calibrations: the night's dark/background/sky/flat groups are queued too
    calibration_jobs = polls[0]["calibration_jobs"]
    assert len(calibration_jobs) >= 4
    again = _json(runner, "watch", str(raw_night), "--once", *root)["polls"]
    assert again[0]["queued_jobs"] == [] and again[0]["calibration_jobs"] == []  # already queued
    (job_id,) = polls[0]["queued_jobs"]
    _ok(runner.invoke(app, ["jobs", "--cancel", str(job_id), *root]))
    assert [j["id"] for j in _json(runner, "jobs", "--state", "cancelled", *root)["jobs"]] == [job_id]
    missing = runner.invoke(app, ["jobs", "--id", "999999", *root])
    assert missing.exit_code == 1 and "no job with id 999999" in missing.stderr
    audit = _json(runner, "audit", "--action", "job.", *root)
    assert [(e["action"], e["object"]) for e in audit] == [("job.cancel", f"job:{job_id}")]
    result = runner.invoke(app, ["worker", "--once", "--processes", "0", *root])
    # only the calibration jobs are left to run
    assert result.exit_code == 0 and f"{len(calibration_jobs)} job(s) run" in result.stderr
    products = _json(runner, "products", *root)["products"]
    assert len(products) == len(calibration_jobs)
    assert {p["type"] for p in products} == {"master-calibration"}
