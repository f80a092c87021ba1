"""Standard workflows on a simulated IRDIS night: chosen from the files' classification, run end to
end (raw -> Level 1 -> Level 2), with the provenance tree down to the raw files."""

from __future__ import annotations

import pytest

from hcdc.instruments.registry import read_file
from hcdc.pipeline.provenance import sha256_file
from hcdc.pipeline.workflow import describe_workflows, run_workflow, select_workflow


@pytest.fixture(scope="module")
def dbi_night(tmp_path_factory):
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night")
    night = simulate_irdis_night(out / "raw", seed=5, scale="small", sequences=DEFAULT_SEQUENCES[:1])
    return night, sorted(f.path for f in night.files)


def test_standard_workflows_are_listed_with_parameters():
    described = {d["name"]: d for d in describe_workflows()}
    assert {"irdis-level1", "irdis-l1-l2", "l2-user-cube"} <= set(described)
    l1l2 = described["irdis-l1-l2"]
    assert ["SPHERE", "IRDIS", "DBI"] in l1l2["modes"] and ["SPHERE", "IRDIS", "CI"] in l1l2["modes"]
    level2 = next(n for n in l1l2["nodes"] if n["name"] == "level2")
    params = {p["name"]: p["default"] for p in level2["parameters"]}
    assert params["algorithm"] == "pca_annular" and params["ncomp"] == 3
    assert level2["depends_on"] == ["level1"]


@pytest.mark.slow
def test_irdis_dbi_night_level1_to_level2(dbi_night, tmp_path):
    night, raw = dbi_night
    workflow = select_workflow([read_file(p)[0] for p in raw])
    assert workflow.name == "irdis-l1-l2"
    # kept quick: no contrast curve, the central 44 px radius only (companions at 20 and 39 px)
    overrides = [
        "level2.algorithm=pca",
        "level2.ncomp=5",
        "previews=false",
        "compute_contrast=false",
        "crop_radius=44",
    ]
    result = run_workflow(workflow, {"raw": raw}, overrides, work_dir=tmp_path)
    assert result.status == "done", {n: r.error for n, r in result.nodes.items()}
    prov = result.provenance
    # the provenance tree: Level 2 <- Level 1 <- raw files (with their sha256)
    assert prov["level2"].parents == [prov["level1"].id]
    assert prov["level2"].input("level1").files[0].path == str(result.outputs["level1"].resolve())
    assert {f.sha256 for f in prov["level1"].input("raw").files} == {sha256_file(p) for p in raw}
    assert prov["level2"].parameters["ncomp"] == 5 and prov["level2"].workflow == "irdis-l1-l2"
    # the strongest detection is an injected companion, where it was put
    detections = result.outputs["summary"]["detections"]
    assert detections
    best = max(detections, key=lambda d: d["snr"])
    truth = min(night.companions, key=lambda c: abs(c.separation_mas - best["separation_mas"]))
    assert best["separation_mas"] == pytest.approx(truth.separation_mas, abs=15.0)
    assert abs((best["pa_deg"] - truth.pa_deg + 180) % 360 - 180) < 3.0


def test_level2_on_a_user_cube_with_previews(tmp_path):
    from astropy.io import fits

    from hcdc.pipeline.workflow import get_workflow
    from hcdc.science.simulation.adi import simulate_adi_cube

    sim = simulate_adi_cube(
        n_frames=16, size=49, fwhm=4.0, rotation=70.0, companions=[(12.0, 300.0, 1e-2)], seed=4
    )
    fits.writeto(tmp_path / "cube.fits", sim.cube)
    fits.writeto(tmp_path / "angles.fits", -sim.angles)  # parallactic, as VIP's angle_list (the default)
    fits.writeto(tmp_path / "psf.fits", sim.psf)
    inputs = {
        name: tmp_path / f"{name}.fits" for name in ("cube", "angles", "psf")
    }  # no wavelengths/reference
    result = run_workflow(
        get_workflow("l2-user-cube"), inputs, ["ncomp=2", "compute_contrast=false"], work_dir=tmp_path / "out"
    )
    assert result.status == "done", result.nodes["level2"].error
    previews = result.nodes["level2"].result.outputs["previews"]
    assert previews["image"].endswith(".png") and (tmp_path / "out" / "level2" / previews["image"]).is_file()
    best = max(result.outputs["summary"]["detections"], key=lambda d: d["snr"])
    assert best["separation_px"] == pytest.approx(12.0, abs=1.0)
    assert abs((best["pa_deg"] - 300.0 + 180) % 360 - 180) < 4.0
