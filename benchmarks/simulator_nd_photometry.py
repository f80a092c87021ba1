"""Scatter of the flux frames' 3 lambda/D photometry over speckle realisations, default vs low-order.

Issue 8, item 5: with ``low_order_speckles=True`` the test
``tests/pipeline/test_simulate_irdis.py::test_flux_frames_go_through_the_neutral_density`` measured
1.054-1.094 against 1 +- 0.04 on its one night (seed 3). Its tolerance was set from the default
model's realisation scatter (~1.5 % rms). This script measures that scatter: for each seed it
simulates a short night (2 OBJECT files per sequence; the FLUX frames as in the test) with the
default speckles and with the low-order field, and prints, per model, the ratio ``measured /
expected`` of every FLUX frame and field (the test's own measurement: 3 lambda/D aperture minus
the median of an 8-11 lambda/D annulus, against core x ND + the model's mean speckle light), then
its mean, rms and worst deviation from 1::

    PYTHONPATH=src .venv/bin/python benchmarks/simulator_nd_photometry.py [--seeds 0-11]
        [--models default,low_order]

Three ways of counting (``fills``): ``sky_fill`` (the test's measurement before 2026-12-07: bad
pixels as the sky, the model's mean speckle light), ``mirror_fill`` (bad pixels from the
point-symmetric pixel, mean speckle light) and ``own_light`` (the test from 2026-12-07: bad
pixels as the sky, and the expected value built with the frame's own speckle light and the
light the frame's bad pixels hide, both measured the same way on the noise-free model of that
frame: :func:`frame_terms`).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hcdc.instruments.sphere import constants as sc  # noqa: E402
from hcdc.instruments.sphere.irdis import simulate as simmod  # noqa: E402
from hcdc.instruments.sphere.irdis.simulate import SequenceSpec, simulate_irdis_night  # noqa: E402
from hcdc.science.simulation import irdis as sim  # noqa: E402
from hcdc.science.simulation.speckles import (  # noqa: E402
    NACO_LIKE_ENVELOPE,
    NACO_LIKE_WITH_LOW_ORDER,
    make_evolving_speckles,
)

SHORT = (
    SequenceSpec("DB_H23", "DBI", 64.0, 2, 64.0, 4.0, "ND_2.0", "x"),
    SequenceSpec("BB_H", "CI", 32.0, 2, 32.0, 8.0, "ND_3.5", "+"),
)


def calibrated(night, f, k: int) -> np.ndarray:
    """DIT ``k`` of ``f`` in ADU/s above the background (detector truth), as the test does."""
    det = night.detector
    raw = fits.getdata(f.path)[k].astype(np.float64)
    image = (raw - det.bias - det.dark_current * f.dit) / det.flat / f.dit
    image -= sum(night.background_adu_s[f.filter])
    image[det.bad_pixels > 0] = np.nan
    return image


def aperture_flux(
    image: np.ndarray, x: float, y: float, r_ap: float, r_in: float, r_out: float, mirror: bool = False
) -> float:
    """The test's aperture sum minus the median of a local annulus (px). Bad (NaN) pixels count
    as the sky (the test's way) or, with ``mirror``, as the pixel point-symmetric about the star
    (the PSF core is nearly point-symmetric; the sky where that one is bad too)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    r = np.hypot(xx - x, yy - y)
    sky = np.nanmedian(image[(r >= r_in) & (r < r_out)])
    filled = image.copy()
    if mirror:
        bad_y, bad_x = np.nonzero(np.isnan(image) & (r < r_ap))
        my = np.clip(np.rint(2 * y - bad_y).astype(int), 0, image.shape[0] - 1)
        mx = np.clip(np.rint(2 * x - bad_x).astype(int), 0, image.shape[1] - 1)
        filled[bad_y, bad_x] = image[my, mx]
    aperture = filled[r < r_ap]
    aperture = np.where(np.isnan(aperture), sky, aperture)
    return float(np.sum(aperture - sky))


def speckle_light(night, r_ap: float, r_in: float, r_out: float) -> float:
    """The test's mean speckle light in ``r_ap`` lambda/D minus its annulus estimate (model envelope)."""
    preset = dict(NACO_LIKE_WITH_LOW_ORDER) if night.low_order_speckles else {}
    speckles = make_evolving_speckles(np.random.default_rng(night.speckle_seed), **preset)
    r = np.linspace(0.0, r_out, 20001)
    h = speckles.envelope(r) * 2 * np.pi * r
    inner = np.trapezoid(np.where(r <= r_ap, h, 0.0), r)
    ring = np.trapezoid(np.where(r >= r_in, h, 0.0), r) / (np.pi * (r_out**2 - r_in**2))
    return float(inner - np.pi * r_ap**2 * ring)


def night_speckles(night):
    """The night's evolving speckle field, as :func:`simulate_irdis_night` makes it (speckle level 1,
    no AO conditioning)."""
    assert night.ao_telemetry is None
    model = dict(NACO_LIKE_WITH_LOW_ORDER) if night.low_order_speckles else {"envelope": NACO_LIKE_ENVELOPE}
    r_env, level_env = model.pop("envelope")
    return make_evolving_speckles(
        np.random.default_rng(night.speckle_seed),
        envelope=(r_env, tuple(max(v, 1e-300) for v in level_env)),
        **model,
    )


def frame_terms(night, f, k: int, field: int, speckles, r_ap: float, r_in: float, r_out: float):
    """``(own speckle light, hidden light)`` of DIT ``k`` of FLUX file ``f``, field ``field``, in
    units of the star's flux through the ND: the speckle term of the simulator's noise-free scene
    of that frame (same time, position and band) measured as the test measures (aperture minus
    the annulus median), and what the frame's bad pixels inside the aperture hide when counted as
    the sky (the noise-free scene's aperture flux with and without them)."""
    own, scene, bad = simmod.flux_frame_scenes(night, f, k, field, speckles)
    xy = tuple(f.star_xy[k, field])
    hidden_scene = np.where(bad, np.nan, scene)
    ring = (r_ap, r_in, r_out)
    hidden = aperture_flux(scene, *xy, *ring) - aperture_flux(hidden_scene, *xy, *ring)
    return aperture_flux(own, *xy, *ring), hidden


def ratios(night, mirror: bool = False, own_light: bool = False) -> list[float]:
    light = speckle_light(night, 3.0, 8.0, 11.0)
    speckles = night_speckles(night) if own_light else None
    out = []
    for flt in ("DB_H23", "BB_H"):
        for f in night.select("OBJECT,FLUX", flt):
            for field in range(2):
                wl = night.wavelengths_nm[flt][field]
                lod = sc.lambda_over_d_px(wl)
                fw = night.field_width
                image = calibrated(night, f, 0)[:, field * fw : (field + 1) * fw]
                measured = aperture_flux(image, *f.star_xy[0, field], 3 * lod, 8 * lod, 11 * lod, mirror)
                hidden = 0.0
                if own_light:
                    light, hidden = frame_terms(night, f, 0, field, speckles, 3 * lod, 8 * lod, 11 * lod)
                expected = (
                    night.star_flux_adu_s[flt][field]
                    * sc.nd_transmission(f.nd, wl)
                    * (sim.airy_encircled_energy(3) + light - hidden)
                )
                out.append(measured / expected)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0-11", help="range 'a-b' (inclusive)")
    parser.add_argument("--models", default="default,low_order", help="comma-separated: default, low_order")
    args = parser.parse_args()
    a, b = (int(v) for v in args.seeds.split("-"))
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": [a, b],
                    "loadavg": os.getloadavg()[0], "models": {}}  # fmt: skip
    for name in args.models.split(","):
        low_order = {"default": False, "low_order": True}[name]
        values: dict[str, list] = {"sky_fill": [], "mirror_fill": [], "own_light": []}
        for seed in range(a, b + 1):
            with tempfile.TemporaryDirectory() as tmp:
                night = simulate_irdis_night(tmp, seed=seed, scale="small", sequences=SHORT,
                                             low_order_speckles=low_order)  # fmt: skip
                values["sky_fill"].append([round(v, 4) for v in ratios(night)])
                values["mirror_fill"].append([round(v, 4) for v in ratios(night, mirror=True)])
                values["own_light"].append([round(v, 4) for v in ratios(night, own_light=True)])
        result["models"][name] = {}
        for fill, rows in values.items():
            flat = np.array([v for row in rows for v in row])
            result["models"][name][fill] = {
                "per_seed": rows,
                "mean": round(float(flat.mean()), 4),
                "rms_about_1": round(float(np.sqrt(np.mean((flat - 1.0) ** 2))), 4),
                "std": round(float(flat.std(ddof=1)), 4),
                "worst": round(float(flat[np.argmax(np.abs(flat - 1.0))]), 4),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
