"""``hcdc postprocess`` end to end: simulated companion (known answer), real subprocess, bad inputs, NACO."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from hcdc.cli import app
from hcdc.science import geometry
from hcdc.science.characterization.detection import fit_gaussian_2d
from hcdc.science.postprocessing.products import read_product
from hcdc.science.postprocessing.run import estimate_fwhm
from hcdc.science.simulation.adi import simulate_adi_cube, simulate_spectral_cube

runner = CliRunner()
TRUTH = (25.0, 130.0, 4.0e-4)  # separation px, PA deg, contrast


@pytest.fixture(scope="module")
def simulated_files(tmp_path_factory):
    """A simulated ADI sequence with one companion, written as the FITS files a user brings."""
    folder = tmp_path_factory.mktemp("inputs")
    sim = simulate_adi_cube(n_frames=40, size=101, fwhm=4.0, companions=[TRUTH], seed=3)
    header = fits.Header()
    header["BUNIT"] = "ADU"
    fits.writeto(folder / "cube.fits", sim.cube, header)
    fits.writeto(folder / "angles.fits", sim.angles.astype(np.float32)[:, None])  # (frames, 1) like NACO
    fits.writeto(folder / "psf.fits", sim.psf)
    fits.writeto(folder / "empty.fits", sim.noise_only[:, 20:81, 20:81])
    return folder, sim


def _run(args: list[str]):
    return runner.invoke(app, ["postprocess", *map(str, args)])


def test_simulated_companion_end_to_end(simulated_files, tmp_path):
    folder, sim = simulated_files
    out = tmp_path / "out"
    result = _run(
        [
            folder / "cube.fits",
            "--angles",
            folder / "angles.fits",
            "--psf",
            folder / "psf.fits",
            "--algorithm",
            "pca",
            "--ncomp",
            "5",
            "--fwhm",
            "4",
            "--pixel-scale",
            "12.25",
            "--star-flux",
            "1e6",
            "--out",
            out,
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    truth = sim.companions[0]
    assert len(summary["detections"]) == 1
    det = summary["detections"][0]
    assert math.hypot(det["x"] - truth.x, det["y"] - truth.y) < 0.3
    assert det["contrast"] == pytest.approx(TRUTH[2], rel=0.10)
    assert det["separation_mas"] == pytest.approx(25.0 * 12.25, abs=0.3 * 12.25)
    assert det["pa_deg"] == pytest.approx(130.0, abs=1.0)
    # Contrast at the standard separations that fit in the 101 px frame (0.2" = 16 px, 0.5" = 41 px).
    rows = {row["separation_arcsec"]: row["contrast"][0] for row in summary["contrast_at"]}
    assert set(rows) == {0.2, 0.3, 0.5, 1.0}
    assert 0 < rows[0.5] < rows[0.2] < 1e-2 and rows[1.0] is None  # 1" = 82 px is outside the frame
    assert summary["params"] == {"ncomp": 5} and summary["image_unit"] == "ADU"
    # Files: the product reads back with the same detection; previews and the JSON summary exist.
    product = read_product(summary["files"]["product"])
    assert product.detections[0].x == pytest.approx(det["x"])
    assert product.algorithm == "pca" and product.pixel_scale_mas == 12.25
    assert (
        str(folder / "cube.fits") in product.inputs and len(product.inputs[str(folder / "cube.fits")]) == 64
    )
    for kind in ("image", "image_tc", "snr_map", "contrast"):
        assert Path(summary["files"][kind]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "cube_pca_summary.json").read_text())["detections"][0]["x"] == det["x"]


def test_table_output_and_no_false_alarm(simulated_files, tmp_path):
    folder, _ = simulated_files
    np.savetxt(tmp_path / "angles.txt", fits.getdata(folder / "angles.fits").ravel())
    result = _run(
        [
            folder / "empty.fits",
            "--angles",
            tmp_path / "angles.txt",
            "--algorithm",
            "cadi",
            "--fwhm",
            "4",
            "--no-contrast",
            "--out",
            tmp_path / "out",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "0 detection(s)" in result.stdout
    assert "files written" in result.stdout
    assert (tmp_path / "out" / "empty_cadi_L2.fits").is_file()
    assert "no --pixel-scale" in result.output


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("angles", "angles file .*angles_short.fits: 39 angles for the 40 frames of cube"),
        ("nan", "cube file .*nan.fits: 1 NaN or infinite pixel"),
        ("not_fits", "cube file .*notes.fits: not a FITS file"),
        ("flat", "cube file .*flat.fits: expected a 3-D or 4-D array, got shape \\(101, 101\\)"),
        ("missing", "cube file .*absent.fits: no such file"),
        ("param", "no parameter\\(s\\) ncomps"),
        ("algorithm", "unknown post-processing algorithm 'nope'"),
    ],
)
def test_bad_inputs_name_the_file_and_the_reason(simulated_files, tmp_path, case, message):
    folder, sim = simulated_files
    cube, angles = folder / "cube.fits", folder / "angles.fits"
    extra: list[str] = []
    if case == "angles":
        angles = tmp_path / "angles_short.fits"
        fits.writeto(angles, sim.angles[:-1])
    elif case == "nan":
        data = sim.cube.copy()
        data[3, 10, 10] = np.nan
        cube = tmp_path / "nan.fits"
        fits.writeto(cube, data)
    elif case == "not_fits":
        cube = tmp_path / "notes.fits"
        cube.write_text("SIMPLE = not really\n")
    elif case == "flat":
        cube = tmp_path / "flat.fits"
        fits.writeto(cube, sim.cube[0])
    elif case == "missing":
        cube = tmp_path / "absent.fits"
    elif case == "param":
        extra = ["--param", "ncomps=3"]
    elif case == "algorithm":
        extra = ["--algorithm", "nope"]
    result = _run([cube, "--angles", angles, "--fwhm", "4", "--out", tmp_path / "out", *extra])
    assert result.exit_code == 2
    assert "error" in result.output
    # Compare without whitespace: the console may wrap long paths.
    assert re.search(message.replace(" ", ""), re.sub(r"\s+", "", result.output)), result.output
    assert not (tmp_path / "out").exists()  # nothing is written for bad input


def test_real_hcdc_subprocess(simulated_files, tmp_path):
    folder, _ = simulated_files
    executable = shutil.which("hcdc", path=str(Path(sys.executable).parent)) or shutil.which("hcdc")
    assert executable, "the hcdc console script is not installed"
    completed = subprocess.run(
        [
            executable,
            "postprocess",
            str(folder / "empty.fits"),
            "--angles",
            str(folder / "angles.fits"),
            "--algorithm",
            "pca",
            "--ncomp",
            "3",
            "--param",
            "collapse=mean",
            "--fwhm",
            "4",
            "--pixel-scale",
            "12.25",
            "--no-contrast",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["params"] == {"ncomp": 3, "collapse": "mean"}
    assert summary["detections"] == [] and summary["contrast_at"] == []
    assert read_product(tmp_path / "out" / "empty_pca_L2.fits").image.shape == (61, 61)


# ------------------------------------------------------------------------------------------- NACO

NACO_FWHM = 4.6
VIP_XY = (61.867, 61.882)  # VIP's centroid of b on its PCA-10 image (re-centred cube, raw angles)


def _recentred_naco(folder: Path, out: Path) -> tuple[Path, Path]:
    """Level 1 preparation the CLI expects: star on (n//2, n//2) and hcdc derotation angles.

    The dark hole of the AGPM is fitted with a negative 2-D Gaussian on every frame and moved to
    (50, 50) (as VIP's tutorials do); hcdc's derotation angles are the raw angles negated (VIP's
    ``angle_list`` turns frames the other way, see tests/science/postprocessing/test_naco_betapic.py).
    """
    cube = fits.getdata(folder / "naco_betapic_cube.fits").astype(np.float32)
    pa = fits.getdata(folder / "naco_betapic_pa.fits").astype(np.float64).ravel()
    cy, cx = geometry.frame_center(cube.shape)
    fits_ = [fit_gaussian_2d(f, cx + 1, cy + 1, box=9, fwhm=NACO_FWHM, negative=True) for f in cube]
    centred = geometry.shift_frames(
        cube, np.array([cy - f.y for f in fits_]), np.array([cx - f.x for f in fits_])
    )
    fits.writeto(out / "naco_l1.fits", centred.astype(np.float32))
    fits.writeto(out / "naco_angles.fits", -pa)
    return out / "naco_l1.fits", out / "naco_angles.fits"


@pytest.fixture(scope="module")
def naco_inputs(shared_data, tmp_path_factory):
    folder = shared_data / "naco_betapic"
    cube, angles = _recentred_naco(folder, tmp_path_factory.mktemp("naco"))
    return cube, angles, folder / "naco_betapic_psf.fits"


@pytest.mark.shared_data
def test_naco_beta_pic_b_found(naco_inputs, tmp_path):
    cube, angles, psf = naco_inputs
    result = _run(
        [
            cube,
            "--angles",
            angles,
            "--psf",
            psf,
            "--algorithm",
            "pca",
            "--ncomp",
            "10",
            "--fwhm",
            str(NACO_FWHM),
            "--pixel-scale",
            "27.19",
            "--star-flux",
            "764939.6",
            "--negfc",
            "--out",
            tmp_path / "out",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["detections"]) == 1  # b, and no false alarm
    b = summary["detections"][0]
    assert math.hypot(b["x"] - VIP_XY[0], b["y"] - VIP_XY[1]) < 0.3
    assert b["separation_mas"] / 1000 == pytest.approx(0.452, abs=0.01)
    assert b["snr"] >= 9.92  # VIP 2.1.1, full-frame PCA 10 components
    assert b["photometry"] == "negfc"
    assert b["contrast"] == pytest.approx(8.47e-4, rel=0.15)  # Absil et al. 2013
    rows = {row["separation_arcsec"]: row["contrast"][0] for row in summary["contrast_at"]}
    # The default curve is hcdc's detection limit; within 2 FWHM (0.25") full-frame PCA 10 absorbs a
    # companion of any brightness, so no limit is reported there (None in the JSON).
    assert rows[0.2] is None
    assert (rows[0.3] is None or rows[0.3] > rows[0.5]) and rows[0.5] > rows[1.0] > 0


@pytest.mark.shared_data
def test_naco_contrast_with_vip_settings_matches_vip(naco_inputs, tmp_path):
    """VIP 2.1.1's formula, PCA (no mean subtraction) and fakes (S/N 100, every px) give VIP's curve."""
    cube, angles, psf = naco_inputs
    result = _run(
        [
            cube,
            "--angles",
            angles,
            "--psf",
            psf,
            "--ncomp",
            "10",
            "--param",
            "scaling=null",
            "--contrast-criterion",
            "vip",
            "--fc-snr",
            "100",
            "--throughput-step",
            "1",
            "--negfc",
            "--fwhm",
            str(NACO_FWHM),
            "--pixel-scale",
            "27.19",
            "--star-flux",
            "764939.6",
            "--out",
            tmp_path / "out",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    rows = {row["separation_arcsec"]: row["contrast"][0] for row in json.loads(result.stdout)["contrast_at"]}
    vip = {0.3: 3.25e-3, 0.5: 4.36e-4, 1.0: 8.67e-5}  # README: VIP 2.1.1 on the planet-free cube
    for separation, value in vip.items():
        assert rows[separation] == pytest.approx(value, rel=0.2), (separation, rows[separation] / value)


def test_spectral_cube_with_wavelength_file_and_psf_cube(tmp_path):
    sim = simulate_spectral_cube(
        wavelengths=(1.0, 1.2, 1.4),
        n_frames=12,
        size=65,
        fwhm_ref=3.5,
        companions=[(18.0, 60.0, 1e-3)],
        seed=4,
    )
    fits.writeto(tmp_path / "ifs.fits", sim.cube)
    fits.writeto(tmp_path / "angles.fits", sim.angles)
    fits.writeto(tmp_path / "psf.fits", sim.psf)
    np.savetxt(tmp_path / "wl.txt", sim.wavelengths)
    np.savetxt(tmp_path / "wl_bad.txt", sim.wavelengths[:2])
    common = [
        tmp_path / "ifs.fits",
        "--angles",
        tmp_path / "angles.fits",
        "--psf",
        tmp_path / "psf.fits",
        "--ncomp",
        "2",
        "--star-flux",
        "1e6",
        "--no-contrast",
        "--out",
        tmp_path / "out",
        "--json",
    ]
    bad = _run([*common, "--wavelengths", tmp_path / "wl_bad.txt"])
    assert bad.exit_code == 2 and "2 values for 3 wavelength planes" in re.sub(r"\s+", " ", bad.output)
    result = _run([*common, "--wavelengths", tmp_path / "wl.txt"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["wavelengths_um"] == pytest.approx([1.0, 1.2, 1.4])
    truth = sim.companions[0]
    assert any(math.hypot(d["x"] - truth.x, d["y"] - truth.y) < 0.3 for d in summary["detections"])
    product = read_product(summary["files"]["product"])
    assert product.cube.shape == (3, 65, 65) and product.wavelengths.tolist() == pytest.approx(
        [1.0, 1.2, 1.4]
    )
    assert product.fwhm == pytest.approx(np.mean([estimate_fwhm(p) for p in sim.psf]))


def test_rdi_with_a_reference_cube(simulated_files, tmp_path):
    folder, sim = simulated_files
    # A reference star observed with the same speckles but its own photon noise.
    rng = np.random.default_rng(9)
    reference = sim.noise_only + rng.normal(0.0, 20.0, sim.noise_only.shape).astype(np.float32)
    fits.writeto(tmp_path / "ref.fits", reference)
    fits.writeto(tmp_path / "ref_small.fits", reference[:, :50, :50])
    args = [
        folder / "cube.fits",
        "--angles",
        folder / "angles.fits",
        "--algorithm",
        "rdi",
        "--ncomp",
        "5",
        "--fwhm",
        "4",
        "--no-contrast",
        "--out",
        tmp_path / "out",
        "--json",
    ]
    bad = _run([*args, "--reference", tmp_path / "ref_small.fits"])
    assert bad.exit_code == 2 and "frame size (50, 50) differs" in re.sub(r"\s+", " ", bad.output)
    result = _run([*args, "--reference", tmp_path / "ref.fits"])
    assert result.exit_code == 0, result.output
    detections = json.loads(result.stdout)["detections"]
    truth = sim.companions[0]
    assert len(detections) == 1
    assert math.hypot(detections[0]["x"] - truth.x, detections[0]["y"] - truth.y) < 0.3
