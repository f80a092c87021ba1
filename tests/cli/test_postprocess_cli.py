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
from hcdc.science.postprocessing.detection import fit_gaussian_2d
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
    # Parallactic angles as VIP's angle_list (the default convention): the negated derotation angles.
    fits.writeto(folder / "angles.fits", -sim.angles.astype(np.float32)[:, None])  # (frames, 1) like NACO
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
    # No pupil offset / true north given: the PA is relative to the detector, and says so.
    assert summary["pa_reference"] == "detector" and summary["orientation"]["known"] is False
    assert fits.getheader(summary["files"]["product"])["ORIENT"] == "DETECTOR"
    assert summary["warnings"] == []
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


def test_completeness_curve_in_the_product_and_the_table(simulated_files, tmp_path):
    """``--completeness`` writes the completeness curve (COMPL_0) next to the detection limit; the
    curve's provenance (criterion, false-positive fraction, fakes at the limit) is in the header."""
    folder, sim = simulated_files
    common = ["--angles", folder / "angles.fits", "--psf", folder / "psf.fits", "--ncomp", "3"]
    common += ["--fwhm", "4", "--pixel-scale", "12.25", "--star-flux", str(sim.star_flux)]
    result = _run(
        [folder / "empty.fits", *common, "--completeness", "0.75", "--completeness-fakes", "3"]
        + ["--out", tmp_path / "out"]
    )
    assert result.exit_code == 0, result.output
    assert "75 % complete" in result.stdout
    product = tmp_path / "out" / "empty_pca_L2.fits"
    with fits.open(product) as hdul:
        header = hdul["CONTRAST"].header
        assert (header["CRITERIO"], header["FAKES"], header["COMPLETE"], header["COMPNFAK"]) == (
            "detection",
            "LIMIT",
            0.75,
            3,
        )
        assert header["CURVEFPF"] == pytest.approx(2.87e-7, rel=1e-2)
    curves = read_product(product).contrast
    reached = np.isfinite(curves.completeness[0])
    assert reached.sum() >= 3, curves.completeness  # most separations reach 3 of 3 fakes recovered
    # Recovering 3 of 3 fakes takes more than the limit, where they are found about half the time.
    assert np.all(curves.completeness[0][reached] >= 0.9 * curves.contrast[0][reached])


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
    """Level 1 preparation as VIP's tutorials do it: star on (n//2, n//2), raw parallactic angles.

    The dark hole of the AGPM is fitted with a negative 2-D Gaussian on every frame and moved to
    (50, 50); the angles are passed as a VIP user passes them (``angle_list``, hcdc's default
    ``--angle-convention parallactic``).
    """
    cube = fits.getdata(folder / "naco_betapic_cube.fits").astype(np.float32)
    pa = fits.getdata(folder / "naco_betapic_pa.fits").astype(np.float64).ravel()
    cy, cx = geometry.frame_center(cube.shape)
    fits_ = [fit_gaussian_2d(f, cx + 1, cy + 1, box=9, fwhm=NACO_FWHM, negative=True) for f in cube]
    centred = geometry.shift_frames(
        cube, np.array([cy - f.y for f in fits_]), np.array([cx - f.x for f in fits_])
    )
    fits.writeto(out / "naco_l1.fits", centred.astype(np.float32))
    fits.writeto(out / "naco_angles.fits", pa)
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
    fits.writeto(tmp_path / "angles.fits", -sim.angles)  # parallactic (VIP angle_list)
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


# ------------------------------------------------ conventions: angles, orientation, checks (issue 8)

NACO_PUPIL_OFFSET, NACO_TRUE_NORTH = 104.84, -0.45  # README of the NACO data (Absil et al. 2013)
BETA_PIC = (86.82119, -51.06651)  # deg, ICRS (SIMBAD)


@pytest.mark.shared_data
def test_naco_as_a_vip_user_gives_it_beta_pic_b_on_the_sky(shared_data, tmp_path):
    """The raw files exactly as VIP's users pass them (raw cube, parallactic angles), plus the
    instrument's offsets: b at its published PA on the sky, and a WCS that places it there."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    folder = shared_data / "naco_betapic"
    out = tmp_path / "out"
    common = [
        folder / "naco_betapic_cube.fits",
        "--angles",
        folder / "naco_betapic_pa.fits",
        "--psf",
        folder / "naco_betapic_psf.fits",
        "--ncomp",
        "10",
        "--fwhm",
        str(NACO_FWHM),
        "--pixel-scale",
        "27.19",
        "--star-flux",
        "764939.6",
        "--no-contrast",
        "--json",
    ]
    # Without --recenter: the 1.4 px off-centre star is reported, not silently used.
    plain = _run([*common, "--out", tmp_path / "plain"])
    assert plain.exit_code == 0, plain.output
    summary = json.loads(plain.stdout)
    assert any("1.42 px from the centre convention" in w and "--recenter" in w for w in summary["warnings"])
    assert summary["pa_reference"] == "detector"

    result = _run(
        [
            *common,
            "--recenter",
            "--pupil-offset",
            str(NACO_PUPIL_OFFSET),
            "--true-north",
            str(NACO_TRUE_NORTH),
            "--transpose",
            "--ra",
            str(BETA_PIC[0]),
            "--dec",
            str(BETA_PIC[1]),
            "--out",
            out,
        ]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["warnings"] == [] and summary["pa_reference"] == "sky"
    assert len(summary["detections"]) == 1
    b = summary["detections"][0]
    assert b["pa_deg"] == pytest.approx(211.2, abs=1.5)  # Absil et al. 2013
    assert b["separation_mas"] / 1000 == pytest.approx(0.452, abs=0.01)
    assert b["snr"] >= 9.92  # VIP 2.1.1, full-frame PCA 10 components
    # The product's celestial WCS puts b where the table says, east of south (PA 211).
    header = fits.getheader(summary["files"]["product"], "IMAGE")
    assert header["ORIENT"] == "NORTH_UP_EAST_LEFT" and header["CTYPE1"] == "RA---TAN"
    star = SkyCoord(*BETA_PIC, unit="deg")
    where = WCS(header).pixel_to_world(b["x"], b["y"])
    assert star.position_angle(where).deg == pytest.approx(b["pa_deg"], abs=0.01)
    assert star.separation(where).to_value("mas") == pytest.approx(b["separation_mas"], rel=1e-4)


@pytest.mark.shared_data
def test_naco_psf_in_other_units_is_a_warning_not_a_contrast(shared_data, tmp_path):
    """The NACO PSF file is not in the cube's units (1-FWHM flux 1.23 vs 764939.6)."""
    folder = shared_data / "naco_betapic"
    result = _run(
        [
            folder / "naco_betapic_cube.fits",
            "--angles",
            folder / "naco_betapic_pa.fits",
            "--psf",
            folder / "naco_betapic_psf.fits",
            "--recenter",
            "--ncomp",
            "10",
            "--fwhm",
            str(NACO_FWHM),
            "--pixel-scale",
            "27.19",
            "--out",
            tmp_path / "out",
        ]
    )
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.output)
    assert "warning: star flux 1.227 (1-FWHM flux of the PSF) is not above the brightest" in text
    assert "contrasts are not reported" in text
    product = read_product(tmp_path / "out" / "naco_betapic_cube_pca_L2.fits")
    assert product.star_flux is None and product.contrast is None
    assert all(math.isnan(d.contrast) for d in product.detections) and product.detections
    assert any("not in the cube's units" in w for w in product.warnings)


def test_sky_orientation_from_offsets_on_a_simulation(simulated_files, tmp_path):
    """Known truth: a companion at PA 130 on the sky; the parallactic angles of the file are the
    derotation angles without a pupil offset of 30 and a true north of -2 deg."""
    folder, sim = simulated_files
    offset, north = 30.0, -2.0
    fits.writeto(tmp_path / "pa.fits", -sim.angles - offset - north)
    args = [folder / "cube.fits", "--psf", folder / "psf.fits", "--fwhm", "4", "--star-flux", "1e6"]
    args += ["--no-contrast", "--pixel-scale", "12.25", "--json"]
    sky = _run(
        [*args, "--angles", tmp_path / "pa.fits", "--pupil-offset", str(offset), "--true-north", str(north)]
        + ["--out", tmp_path / "sky"]
    )
    assert sky.exit_code == 0, sky.output
    summary = json.loads(sky.stdout)
    assert summary["pa_reference"] == "sky"
    assert summary["detections"][0]["pa_deg"] == pytest.approx(130.0, abs=1.0)
    # Without the offsets the same angles leave the image turned by them, relative to the detector.
    det = _run([*args, "--angles", tmp_path / "pa.fits", "--out", tmp_path / "det"])
    summary = json.loads(det.stdout)
    assert summary["pa_reference"] == "detector"
    assert summary["detections"][0]["pa_deg"] == pytest.approx(130.0 - offset - north, abs=1.0)
    # vlt-sphere derotation angles (a *_derot.fits: DEROT = parang + offsets, turned
    # counter-clockwise as VIP and IRDAP do), declared as such, offsets in: same answer on the sky.
    fits.writeto(tmp_path / "derot.fits", -sim.angles)
    derot = _run(
        [*args, "--angles", tmp_path / "derot.fits", "--angle-convention", "derotation"]
        + ["--pupil-offset", "0", "--out", tmp_path / "derot"]
    )
    summary = json.loads(derot.stdout)
    assert summary["pa_reference"] == "sky"
    assert summary["detections"][0]["pa_deg"] == pytest.approx(130.0, abs=1.0)
    # hcdc's old clockwise angles (Level 1 products without ROTSENSE) need their own name.
    fits.writeto(tmp_path / "cw.fits", sim.angles)
    clockwise = _run(
        [*args, "--angles", tmp_path / "cw.fits", "--angle-convention", "hcdc-clockwise"]
        + ["--pupil-offset", "0", "--out", tmp_path / "cw"]
    )
    assert json.loads(clockwise.stdout)["detections"][0]["pa_deg"] == pytest.approx(130.0, abs=1.0)
    # A mirror detector: transposed frames, angles of the other sense.
    mirrored = tmp_path / "mirrored.fits"
    fits.writeto(mirrored, np.swapaxes(sim.cube, -1, -2))
    fits.writeto(tmp_path / "pa_m.fits", sim.angles - offset - north)
    transposed = _run(
        [mirrored, *args[1:], "--angles", tmp_path / "pa_m.fits", "--transpose"]
        + ["--pupil-offset", str(offset), "--true-north", str(north), "--out", tmp_path / "m"]
    )
    assert transposed.exit_code == 0, transposed.output
    d = json.loads(transposed.stdout)["detections"][0]
    assert d["pa_deg"] == pytest.approx(130.0, abs=1.0)
    assert math.hypot(d["x"] - sim.companions[0].x, d["y"] - sim.companions[0].y) < 0.3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pixel-scale", "0"], "--pixel-scale (mas/px) must be a finite number > 0; got 0.0"),
        (["--pixel-scale", "-12.25"], "--pixel-scale (mas/px) must be a finite number > 0; got -12.25"),
        (["--fwhm", "0"], "--fwhm (px) must be a finite number > 0"),
        (["--star-flux", "-1"], "--star-flux must be a finite number > 0"),
        (["--crop-radius", "0"], "--crop-radius (px) must be a finite number > 0"),
        (["--fpf", "0.7"], "--fpf must be below 0.5"),
        (["--fc-snr", "0"], "--fc-snr must be a finite number > 0"),
        (["--ncomp", "0"], "--ncomp must be at least 1"),
        (["--completeness", "95"], "--completeness must be a fraction in (0, 1)"),
        (["--completeness", "0.95"], "--completeness needs --psf and the contrast curve"),
        (["--completeness-fakes", "5"], "--completeness-fakes needs --completeness"),
        (["--angle-convention", "vip"], "angle convention must be one of parallactic, derotation"),
        (["--true-north", "-0.45"], "give the pupil offset too"),
        (["--transpose"], "transposing the frames (mirror detector) needs the pupil offset"),
        (["--center-method", "waffle"], "--center-method must be one of auto, psf, negative-gaussian"),
        (["--pupil-offset", "0", "--ra", "400", "--dec", "0"], "target RA must be in [0, 360) deg"),
    ],
)
def test_every_parameter_is_checked_before_any_work(simulated_files, tmp_path, extra, message):
    folder, _ = simulated_files
    args = [folder / "cube.fits", "--angles", folder / "angles.fits", "--fwhm", "4"]
    result = _run([*args, "--out", tmp_path / "out", *extra])
    assert result.exit_code == 2, result.output
    assert message.replace(" ", "") in re.sub(r"\s+", "", result.output), result.output
    assert not (tmp_path / "out").exists()  # nothing written, nothing computed


def test_a_run_leaves_a_provenance_record_that_replays(simulated_files, tmp_path):
    """``hcdc postprocess`` is the ``l2-postprocess`` recipe: its record (parameters, inputs'
    sha256, software versions) is the one a data centre's worker keeps, and it replays."""
    import hashlib

    import hcdc
    from hcdc.pipeline.provenance import ProvenanceRecord, provenance_tree
    from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION
    from hcdc.pipeline.replay import rerun

    folder, _ = simulated_files
    out = tmp_path / "out"
    args = [folder / "cube.fits", "--angles", folder / "angles.fits", "--psf", folder / "psf.fits"]
    args += ["--algorithm", "pca", "--ncomp", "5", "--fwhm", "4", "--pixel-scale", "12.25"]
    result = _run([*args, "--no-contrast", "--out", out, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"]["provenance"] == str(out / "cube_pca_provenance.json")

    record = ProvenanceRecord.load(out / "cube_pca_provenance.json")
    assert (record.recipe, record.recipe_version) == ("l2-postprocess", WORKFLOW_VERSION)  # as the workflows
    assert record.status == "done" and record.software_version == hcdc.__version__
    assert {"numpy", "astropy"} <= set(record.libraries)
    params = record.parameters
    assert params["algorithm"] == "pca" and params["algorithm_params"] == {"ncomp": 5}
    assert (params["pixel_scale_mas"], params["fwhm"], params["compute_contrast"]) == (12.25, 4.0, False)
    for name in ("cube", "angles", "psf"):
        item = record.input(name).files[0]
        assert item.path == str((folder / f"{name}.fits").resolve())
        assert item.sha256 == hashlib.sha256((folder / f"{name}.fits").read_bytes()).hexdigest()
    product = Path(summary["files"]["product"])
    assert record.output("product").files[0].sha256 == hashlib.sha256(product.read_bytes()).hexdigest()
    tree = provenance_tree(record, {})  # how the catalogue shows a worker's product
    assert [i["name"] for i in tree["inputs"]] == ["cube", "angles", "psf"]

    again = rerun(record, tmp_path / "again")  # from the record alone, same file names
    assert again.provenance.rerun_of == record.id
    assert Path(again.outputs["product"]).name == product.name == "cube_pca_L2.fits"
    assert read_product(again.outputs["product"]).image.tobytes() == read_product(product).image.tobytes()


def test_recipe_version_is_the_workflows_unless_asked(simulated_files, tmp_path):
    """``--recipe-version`` runs another ``l2-postprocess`` version (1.5: the calibrated threshold,
    its null-map cards in the product); an unknown one is refused before anything is computed."""
    from hcdc.pipeline.provenance import ProvenanceRecord

    folder, _ = simulated_files
    args = [folder / "cube.fits", "--angles", folder / "angles.fits", "--psf", folder / "psf.fits"]
    args += ["--algorithm", "pca", "--ncomp", "5", "--fwhm", "4", "--pixel-scale", "12.25", "--no-contrast"]
    result = _run([*args, "--recipe-version", "1.5", "--out", tmp_path / "new", "--json"])
    assert result.exit_code == 0, result.output
    record = ProvenanceRecord.load(tmp_path / "new" / "cube_pca_provenance.json")
    assert record.recipe_version == "1.5"
    product = read_product(json.loads(result.stdout)["files"]["product"])
    assert product.detection_null is not None and product.detection_null.tail_factor >= 1.0
    result = _run([*args, "--recipe-version", "9.9", "--out", tmp_path / "none"])
    assert result.exit_code == 2 and "available versions" in result.output, result.output
    assert not (tmp_path / "none").exists()


def test_default_is_student_and_calibrated_threshold_is_opted_into(simulated_files, tmp_path):
    """The default run (the workflows' 1.6) keeps the Student threshold and places photometry
    fakes at the flux; ``--calibrated-threshold`` asks for the null-map threshold in 1.6, and is
    refused with a version that has no such parameter (before anything is written)."""
    from hcdc.pipeline.provenance import ProvenanceRecord

    folder, _ = simulated_files
    args = [folder / "cube.fits", "--angles", folder / "angles.fits", "--psf", folder / "psf.fits"]
    args += ["--algorithm", "pca", "--ncomp", "5", "--fwhm", "4", "--pixel-scale", "12.25", "--no-contrast"]
    runs = {}
    for name, extra in (("default", []), ("calibrated", ["--calibrated-threshold"])):
        result = _run([*args, *extra, "--out", tmp_path / name, "--json"])
        assert result.exit_code == 0, result.output
        record = ProvenanceRecord.load(tmp_path / name / "cube_pca_provenance.json")
        assert record.recipe_version == "1.6"
        assert record.parameters["calibrated_threshold"] is (name == "calibrated")
        runs[name] = read_product(json.loads(result.stdout)["files"]["product"])
    assert runs["default"].detection_null is None
    assert (
        runs["calibrated"].detection_null is not None and runs["calibrated"].detection_null.tail_factor >= 1.0
    )
    result = _run([*args, "--calibrated-threshold", "--recipe-version", "1.4", "--out", tmp_path / "old"])
    assert result.exit_code == 2 and "needs l2-postprocess 1.6" in result.output, result.output
    assert not (tmp_path / "old").exists()


def test_false_alarms_per_image_is_opted_into_and_refused_before_1_6(simulated_files, tmp_path):
    """``--false-alarms-per-image`` sets 1.6's parameter (the product says the threshold's expected
    false peaks per image); with a version that has no such parameter it is refused before
    anything is written."""
    from hcdc.pipeline.provenance import ProvenanceRecord

    folder, _ = simulated_files
    args = [folder / "cube.fits", "--angles", folder / "angles.fits", "--psf", folder / "psf.fits"]
    args += ["--algorithm", "pca", "--ncomp", "5", "--fwhm", "4", "--pixel-scale", "12.25", "--no-contrast"]
    result = _run([*args, "--false-alarms-per-image", "0.01", "--out", tmp_path / "new", "--json"])
    assert result.exit_code == 0, result.output
    record = ProvenanceRecord.load(tmp_path / "new" / "cube_pca_provenance.json")
    assert record.recipe_version == "1.6" and record.parameters["false_alarms_per_image"] == 0.01
    summary = json.loads(result.stdout)
    product = read_product(summary["files"]["product"])
    assert product.detection_search.false_alarms == pytest.approx(0.01, rel=1e-6)
    assert product.detection_fpf == product.detection_search.fpf
    for version, value in (("1.5", "0.01"), ("1.6", "-1")):
        result = _run(
            [*args, "--false-alarms-per-image", value, "--recipe-version", version, "--out", tmp_path / "x"]
        )
        assert result.exit_code == 2, result.output
        assert ("needs l2-postprocess 1.6" if version == "1.5" else "false-alarms") in result.output, (
            result.output
        )
        assert not (tmp_path / "x").exists()


def test_an_input_error_writes_no_record(simulated_files, tmp_path):
    folder, sim = simulated_files
    short = tmp_path / "short.txt"
    np.savetxt(short, sim.angles[:5])
    result = _run([folder / "cube.fits", "--angles", short, "--fwhm", "4", "--out", tmp_path / "out"])
    assert result.exit_code == 2
    assert "5 angles for the 40 frames" in re.sub(r"\s+", " ", result.output)
    assert not (tmp_path / "out").exists()


def test_a_crash_inside_the_run_leaves_its_failed_record(simulated_files, tmp_path, monkeypatch):
    from hcdc.pipeline.provenance import ProvenanceRecord
    from hcdc.science.postprocessing import run as science_run

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(science_run, "postprocess", broken)
    folder, _ = simulated_files
    out = tmp_path / "out"
    result = _run([folder / "cube.fits", "--angles", folder / "angles.fits", "--fwhm", "4", "--out", out])
    assert result.exit_code == 1
    assert "disk on fire" in result.output and "cube_pca_provenance.json" in re.sub(r"\s+", "", result.output)
    record = ProvenanceRecord.load(out / "cube_pca_provenance.json")
    assert record.status == "failed" and "RuntimeError: disk on fire" in record.error
    assert any("Traceback" in line for line in record.log)
