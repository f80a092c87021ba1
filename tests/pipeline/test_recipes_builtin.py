"""The recipes shipped with hcdc, on simulated data with a known answer, and their rerun."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hcdc.instruments.sphere.irdis.level1 import Level1Options, read_level1, reduce_irdis, roles_from_headers
from hcdc.pipeline.errors import ParameterError, RecipeFailed
from hcdc.pipeline.provenance import ProvenanceRecord, sha256_file
from hcdc.pipeline.registry import get_recipe, list_recipes, run_recipe
from hcdc.pipeline.replay import rerun


@pytest.fixture(scope="module")
def irdis_sequence(tmp_path_factory):
    """A small simulated IRDIS DBI sequence with its calibrations (raw files)."""
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night")
    night = simulate_irdis_night(out / "raw", seed=3, scale="small", sequences=DEFAULT_SEQUENCES[:1])
    return night, sorted(f.path for f in night.files)


def test_builtin_recipes_are_registered():
    names = {r.name for r in list_recipes()}
    assert "level1-irdis" in names
    info = get_recipe("level1-irdis").describe()
    params = {p["name"]: p for p in info["parameters"]}
    assert params["center_mode"]["enum"] == ["interpolate", "nearest"]
    with pytest.raises(ParameterError, match="did you mean 'science_dim'"):
        get_recipe("level1-irdis").parse_params(["sciencedim=64"])


def test_level1_recipe_parameters_are_level1_options_field_by_field():
    """Every field of Level1Options is a parameter of the recipe, with the same default, so a
    new option cannot be left at its default by a recipe run (as symmetry_annulus_ld once was)."""
    recipe = get_recipe("level1-irdis")
    defaults = recipe.parse_params([]).model_dump()
    assert defaults == dataclasses.asdict(Level1Options())
    changed = recipe.parse_params(["symmetry_annulus_ld=[10, 20]", "memory_budget_mb=64"]).model_dump()
    options = Level1Options(**changed)
    assert options.symmetry_annulus_ld == (10.0, 20.0) and options.memory_budget_mb == 64.0
    with pytest.raises(ParameterError, match="inner < outer"):
        recipe.parse_params(["symmetry_annulus_ld=[20, 10]"])


def test_level1_recipe_wraps_reduce_irdis_and_reruns_identically(irdis_sequence, tmp_path):
    night, raw = irdis_sequence
    result = run_recipe(
        "level1-irdis", {"raw": raw}, ["science_dim=64", "psf_dim=32"], work_dir=tmp_path / "r1"
    )
    product = read_level1(result.outputs["product"])
    n_object_dits = sum(f.ndit for f in night.select("OBJECT"))
    assert product.cube.shape == (2, n_object_dits, 64, 64)
    assert result.outputs["summary"]["cube_shape"] == [2, n_object_dits, 64, 64]
    assert result.outputs["summary"]["files_per_role"]["OBJECT"] == len(night.select("OBJECT"))
    # the derotation angles are the simulator's truth at mid-DIT
    truth = np.concatenate([f.derot for f in night.select("OBJECT")])
    np.testing.assert_allclose(np.sort(product.derot), np.sort(truth), atol=0.01)
    # the wrapper adds nothing to the science: same cube as calling reduce_irdis directly
    direct = tmp_path / "direct"
    reduce_irdis(roles_from_headers(raw), direct, Level1Options(science_dim=64, psf_dim=32))
    assert np.array_equal(read_level1(direct).cube, product.cube)
    # provenance: every raw file with its sha256; rerun from the JSON alone is bit-identical
    record = result.provenance
    assert {f.sha256 for f in record.input("raw").files} == {sha256_file(p) for p in raw}
    assert record.parameters["science_dim"] == 64 and record.parameters["center_mode"] == "interpolate"
    again = rerun(ProvenanceRecord.from_json(record.to_json()), tmp_path / "r2")
    again_product = read_level1(again.outputs["product"])
    assert again_product.cube.tobytes() == product.cube.tobytes()
    assert again_product.derot.tobytes() == product.derot.tobytes()


def test_level1_recipe_reports_bad_input(irdis_sequence, tmp_path):
    _, raw = irdis_sequence
    darks_only = [p for p in raw if "OBJECT" not in roles_from_headers([p])]
    with pytest.raises(RecipeFailed, match="no OBJECT file given"):
        run_recipe("level1-irdis", {"raw": darks_only}, work_dir=tmp_path)


# -- Level 2 --------------------------------------------------------------------------------------


def test_l2_recipe_reads_a_level1_product_through_its_instrument(irdis_sequence, tmp_path):
    """The instrument that wrote a Level 1 product reads it and gives its plate scale; a product
    that no registered instrument claims is refused with a message naming it."""
    import shutil

    from astropy.io import fits

    from hcdc.instruments.sphere.constants import IRDIS_PIXEL_SCALE_MAS
    from hcdc.instruments.sphere.irdis.level1 import SCIENCE_CUBE

    _, raw = irdis_sequence
    level1 = run_recipe(
        "level1-irdis", {"raw": raw}, ["science_dim=64", "psf_dim=32"], work_dir=tmp_path / "l1"
    )
    params = ["algorithm=cadi", "compute_contrast=false", "previews=false", "fwhm=4"]
    result = run_recipe(
        "l2-postprocess", {"level1": level1.outputs["product"]}, params, work_dir=tmp_path / "l2"
    )
    assert result.outputs["summary"]["pixel_scale_mas"] == IRDIS_PIXEL_SCALE_MAS
    assert result.outputs["summary"]["pa_reference"] == "sky"  # DEROT includes the offsets
    mine = run_recipe(
        "l2-postprocess",
        {"level1": level1.outputs["product"]},
        [*params, "pixel_scale_mas=12.0"],
        work_dir=tmp_path,
    )
    assert mine.outputs["summary"]["pixel_scale_mas"] == 12.0

    foreign = tmp_path / "foreign"
    shutil.copytree(level1.outputs["product"], foreign)
    with fits.open(foreign / SCIENCE_CUBE, mode="update") as hdul:
        hdul[0].header["HIERARCH HCDC RECIPE"] = "someone.elses.level1"
    with pytest.raises(RecipeFailed, match="foreign: not a Level 1 product of any registered instrument"):
        run_recipe("l2-postprocess", {"level1": foreign}, params, work_dir=tmp_path / "f")


@pytest.fixture(scope="module")
def user_cube(tmp_path_factory):
    """A simulated ADI cube with one companion, written as the FITS files a user would give."""
    from astropy.io import fits

    from hcdc.science.simulation.adi import simulate_adi_cube

    out = tmp_path_factory.mktemp("l2")
    sim = simulate_adi_cube(
        n_frames=20, size=65, fwhm=4.0, rotation=60.0, companions=[(15.0, 40.0, 5e-3)], seed=2
    )
    files = {"cube": out / "cube.fits", "angles": out / "angles.txt", "psf": out / "psf.fits"}
    fits.writeto(files["cube"], sim.cube)
    np.savetxt(files["angles"], sim.angles)
    fits.writeto(files["psf"], sim.psf)
    return sim, files


def test_l2_recipe_finds_the_companion_and_reruns_bit_identically(user_cube, tmp_path):
    from hcdc.science.postprocessing.products import read_product

    sim, files = user_cube
    truth = sim.companions[0]
    # The simulation's angles are hcdc (clockwise) rotation angles; user cubes default to parallactic.
    params = ["ncomp=3", "previews=false", f"star_flux={sim.star_flux}", "angle_convention=hcdc-clockwise"]
    result = run_recipe("l2-postprocess", files, params, work_dir=tmp_path / "r1")
    assert result.provenance.parameters["algorithm"] == "pca"
    detections = result.outputs["summary"]["detections"]
    assert detections, "the injected companion was not detected"
    best = max(detections, key=lambda d: d["snr"])
    assert best["separation_px"] == pytest.approx(truth.separation, abs=1.0)
    assert (best["pa_deg"] - truth.pa + 180) % 360 - 180 == pytest.approx(0.0, abs=4.0)
    assert best["contrast"] == pytest.approx(truth.contrast, rel=0.3)  # star_flux reached postprocess
    product = read_product(result.outputs["product"])
    assert product.algorithm == "pca" and product.params.get("ncomp") == 3
    # rebuilt from the JSON record alone: identical arrays (the FITS DATE card differs)
    again = rerun(ProvenanceRecord.from_json(result.provenance.to_json()), tmp_path / "r2")
    rebuilt = read_product(again.outputs["product"])
    assert rebuilt.image.tobytes() == product.image.tobytes()
    assert rebuilt.snr_map.tobytes() == product.snr_map.tobytes()
    assert json.dumps(again.outputs["summary"]["detections"]) == json.dumps(detections)  # NaN-safe


def test_l2_recipe_completeness_curve(user_cube, tmp_path):
    from hcdc.science.postprocessing.products import read_product

    sim, files = user_cube
    params = ["ncomp=3", "previews=false", f"star_flux={sim.star_flux}", "angle_convention=hcdc-clockwise"]
    options = '{"n_fakes": 3, "separations": [22.0, 27.0]}'  # away from the companion at 15 px
    result = run_recipe(
        "l2-postprocess",
        files,
        [*params, "completeness=0.6", f"completeness_options={options}"],
        work_dir=tmp_path,
    )
    curves = read_product(result.outputs["product"]).contrast
    assert (curves.completeness_level, curves.completeness_fakes) == (0.6, 3)
    # The FWHM is measured on the PSF here, so the curve's grid (from 1 FWHM) is not on whole pixels.
    at = np.array([curves.at(s, completeness=True) for s in (22.5, 25.5)])
    limit = np.array([curves.at(s) for s in (22.5, 25.5)])
    assert np.all(np.isfinite(at)) and np.all(at >= 0.9 * limit), (at, limit)
    with pytest.raises(ParameterError, match="completeness"):
        run_recipe("l2-postprocess", files, [*params, "completeness=95"], work_dir=tmp_path / "bad")


def test_l2_recipe_input_errors(user_cube, tmp_path):
    _, files = user_cube
    with pytest.raises(ParameterError, match="unknown algorithm 'pcaa'; known: .*pca"):
        run_recipe("l2-postprocess", files, ["algorithm=pcaa"], work_dir=tmp_path)
    with pytest.raises(ParameterError, match="output_stem"):  # a file name, never a path
        run_recipe("l2-postprocess", files, ["output_stem=../elsewhere"], work_dir=tmp_path)
    with pytest.raises(RecipeFailed, match="needs its angles"):
        run_recipe("l2-postprocess", {"cube": files["cube"]}, work_dir=tmp_path)
    short = tmp_path / "short.txt"
    np.savetxt(short, np.zeros(5))
    with pytest.raises(RecipeFailed, match="short.txt: 5 angles for the 20 frames"):
        run_recipe("l2-postprocess", {"cube": files["cube"], "angles": short}, work_dir=tmp_path)
    with pytest.raises(RecipeFailed, match="either a Level 1 product"):
        run_recipe("l2-postprocess", {"angles": short}, work_dir=tmp_path)


# -- simulation ------------------------------------------------------------------------------------


def test_simulate_recipe_is_reproducible_from_its_provenance(tmp_path):
    params = ["seed=7", "modes=CI", "companions=[[300, 45, 1e-3]]"]
    result = run_recipe("simulate-irdis", {}, params, work_dir=tmp_path / "a")
    truth = json.loads(result.outputs["truth"].read_text())
    assert [(c["separation_mas"], c["pa_deg"]) for c in truth["companions"]] == [(300.0, 45.0)]
    assert truth["seed"] == 7
    records = result.provenance.output("raw").files
    assert len(records) == len(result.outputs["raw"]) > 10
    assert result.provenance.parameters["modes"] == ["CI"]
    assert result.provenance.parameters["companions"] == [[300.0, 45.0, 1e-3]]
    again = rerun(result.provenance.to_json(), tmp_path / "b")
    # same seed, same parameters: the same raw files, byte for byte
    assert [f.sha256 for f in again.provenance.output("raw").files] == [f.sha256 for f in records]
