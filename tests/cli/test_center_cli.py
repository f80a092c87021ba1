"""``hcdc center``: real SPHERE waffle frame shifted by known amounts, a raw simulated IRDIS CENTER
file, the NACO AGPM cube (negative Gaussian), and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from typer.testing import CliRunner

from hcdc.cli import app

runner = CliRunner()
SPHERE_FRAME = (
    Path(__file__).resolve().parents[1] / "data" / "sphere_waffle" / "SPHERE_satspots_centered.fits"
)


def _run(*args: str) -> dict:
    result = runner.invoke(app, ["center", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cube_of_shifted_real_waffle_frames(tmp_path: Path) -> None:
    frame = fits.getdata(SPHERE_FRAME).astype(np.float64)
    shifts = np.random.default_rng(9).uniform(-2.0, 2.0, (6, 2))
    cube = np.array(
        [np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(frame), (dy, dx))).real for dx, dy in shifts],
        dtype=np.float32,
    )
    path = tmp_path / "cube.fits"
    fits.writeto(path, cube)
    # No orientation given: both IRDIS patterns are tried, the right one ('x') passes the checks.
    out = _run(str(path), "--wavelength", "1.667")
    xy = np.array([[r["x"], r["y"]] for r in out["frames"]])
    assert [r["frame"] for r in out["frames"]] == list(range(6)) and all(r["ok"] for r in out["frames"])
    rel = (xy - xy[0]) - (shifts - shifts[0])
    assert np.abs(rel).max() < 0.05  # measured 0.002 px
    assert np.all(np.abs(xy - shifts - 75.0) < 0.1)


def test_raw_irdis_center_file_gives_both_fields(tmp_path: Path) -> None:
    """A simulated raw CENTER file (header with INS COMB IFLT, two fields, leak 30 x a spot)."""
    from hcdc.instruments.sphere.irdis.simulate import SequenceSpec, simulate_irdis_night

    seq = (SequenceSpec("DB_H23", "DBI", 16.0, 1, 16.0, 4.0, "ND_2.0", "x", 30.0),)
    night = simulate_irdis_night(tmp_path / "night", seed=4, sequences=seq)
    f = night.select("OBJECT,CENTER")[0]
    out = _run(str(f.path))  # wavelengths, orientation and fields from the header
    assert [(r["plane"], r["frame"]) for r in out["frames"]] == [(0, 0), (1, 0)]
    assert out["wavelengths_um"] == pytest.approx([1.593, 1.667])
    for r in out["frames"]:
        truth = f.star_xy[0, r["plane"]]
        # Raw frame (no dark, flat or bad-pixel correction): within 0.1 px.
        assert r["ok"] and np.hypot(r["x"] - truth[0], r["y"] - truth[1]) < 0.1, r


def test_negative_gaussian_on_the_naco_cube(shared_data: Path) -> None:
    out = _run(
        str(shared_data / "naco_betapic" / "naco_betapic_cube.fits"),
        "--method",
        "negative-gaussian",
        "--wavelength",
        "3.8",
        "--pixel-scale",
        "27.19",
    )
    xy = np.array([[r["x"], r["y"]] for r in out["frames"]])
    assert len(xy) == 61 and all(r["ok"] for r in out["frames"])
    # README: star ~1 px off the centre (50, 50), re-centred by VIP around (51, 51).
    # Measured: (50.98, 51.01), scatter 0.05 px, median error 0.035 px.
    assert np.hypot(*(xy.mean(axis=0) - 51.0)) < 0.15
    assert np.hypot(*xy.std(axis=0)) < 0.15


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.fits"], "no such file"),
        (["{readme}"], "not a FITS file"),
        (["{vector}"], "not images"),
        (["{frame}"], "needs the wavelength"),
        (["{frame}", "--method", "psf"], "needs the PSF size"),
        (["{frame}", "--method", "centroid"], "unknown method"),
        (["{frame}", "--wavelength", "-1"], "positive"),
    ],
)
def test_bad_inputs_give_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    readme = tmp_path / "notes.fits"
    readme.write_text("not a FITS file")
    vector = tmp_path / "vector.fits"
    fits.writeto(vector, np.zeros((61, 1), dtype=np.float32))
    paths = {"readme": readme, "vector": vector, "frame": SPHERE_FRAME}
    result = runner.invoke(app, ["center", *(a.format(**paths) for a in args)])
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")


def test_failure_is_reported_not_hidden(tmp_path: Path) -> None:
    """A frame without spots: the command prints the frame as failed (error null, ok false)."""
    noise = np.random.default_rng(1).normal(100.0, 5.0, (151, 151)).astype(np.float32)
    path = tmp_path / "noise.fits"
    fits.writeto(path, noise)
    out = _run(str(path), "--wavelength", "1.667", "--waffle-orient", "x")
    (row,) = out["frames"]
    assert row["ok"] is False and row["error"] is None and row["note"]
