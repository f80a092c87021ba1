"""ZIMPOL rotation sense (docs/conventions.md, "Rotation sense"): scenes that are not rotationally
symmetric, placed on the detector in the physical sense (the sky turned clockwise by ``DEROT``, as
vlt-sphere/VIP/IRDAP assume: :func:`hcdc.science.orientation.rotation_from_derotation`), reduced,
and found at their true position angle.

* **polarimetry** (field tracking, ``INS4 DROT2 MODE = SKY``, POSANG 0: ``DEROT`` = True North
  = -1.75 deg): a ring disc with a bright side at PA 60 deg through ``zimpol-polarimetry`` 0.3
  (bright side within 1 deg of 60) and 0.2 (hcdc's old clockwise sense: off by 2 x 1.75 deg);
* **imaging** (pupil tracking, tens of degrees of field rotation): the Level 1 product says
  ``ROTSENSE = 'CCW'``; its frames derotated in the sense that this card selects stack the
  companion at its PA (within 2 deg), in the old sense they smear it.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import hcdc.pipeline.recipes.zimpol  # noqa: F401  (registers the recipes)
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.zimpol import constants as zc
from hcdc.instruments.sphere.zimpol import level1
from hcdc.instruments.sphere.zimpol.simulate import simulate_zimpol_night
from hcdc.pipeline.registry import run_recipe
from hcdc.science.geometry import derotate, frame_center
from hcdc.science.orientation import derotation_angles, level1_convention
from hcdc.science.polarimetry import position_angle_from_star

BRIGHT_PA = 60.0


def _bright_side_pa(q_phi: np.ndarray, radius_px: float) -> float:
    """PA (deg east of north) of the first azimuthal harmonic of ``q_phi`` on the ring."""
    cy, cx = frame_center(q_phi.shape)
    y, x = np.indices(q_phi.shape)
    r = np.hypot(y - cy, x - cx)
    ring = (np.abs(r - radius_px) < 3.0) & np.isfinite(q_phi)
    phi = np.radians(position_angle_from_star(q_phi.shape)[ring])
    values = q_phi[ring]
    return float(np.degrees(np.arctan2(np.sum(values * np.sin(phi)), np.sum(values * np.cos(phi)))))


def test_polarimetry_bright_side_found_at_its_pa(tmp_path) -> None:
    night = simulate_zimpol_night(
        tmp_path / "raw", mode="polarimetry", seed=11, disc_bright_side=(BRIGHT_PA, 0.6)
    )
    assert night.to_dict()["sky_sense"].startswith("physical")
    raw_files = [f.path for f in night.files]
    radius = night.disc_truth()["radius_px"]
    found = {}
    for version in ("0.3", "0.2"):
        result = run_recipe(
            "zimpol-polarimetry",
            {"raw": raw_files},
            ["previews=false"],
            work_dir=tmp_path / version,
            version=version,
        )
        for camera in zc.CAMERAS:
            with fits.open(result.outputs["product"] / f"zimpol_pol_cam{camera}.fits") as hdul:
                found[version, camera] = _bright_side_pa(hdul["Q_PHI"].data.astype(float), radius)
                sense = hdul[0].header.get("HIERARCH HCDC ROTSENSE")
            assert sense == ("CCW" if version == "0.3" else None)
    for camera in zc.CAMERAS:
        # 0.3: the bright side where it is on the sky
        assert found["0.3", camera] == pytest.approx(BRIGHT_PA, abs=1.0), found
        # 0.2 (old clockwise sense): turned by -2 x True North (+3.5 deg) away from it
        assert found["0.2", camera] - BRIGHT_PA == pytest.approx(-2.0 * sc.TRUE_NORTH_DEG, abs=1.0), found


def test_legacy_simulator_and_old_version_agree_with_each_other(tmp_path) -> None:
    """The old simulator and ``zimpol-polarimetry`` 0.2 were self-consistent (why no test saw it)."""
    night = simulate_zimpol_night(
        tmp_path / "raw",
        mode="polarimetry",
        seed=11,
        disc_bright_side=(BRIGHT_PA, 0.6),
        legacy_sky_sense=True,
    )
    result = level1.reduce_polarimetry([f.path for f in night.files], tmp_path / "old", legacy_sense=True)
    with fits.open(result.paths[1]) as hdul:
        pa = _bright_side_pa(hdul["Q_PHI"].data.astype(float), night.disc_truth()["radius_px"])
    assert pa == pytest.approx(BRIGHT_PA, abs=1.0)


def _companion_flux(image: np.ndarray, sep_px: float, pa_deg: float) -> tuple[float, float]:
    """Peak near the expected position (5 px box) and the PA of that peak (deg east of north)."""
    cy, cx = frame_center(image.shape)
    x0 = cx - sep_px * np.sin(np.radians(pa_deg))
    y0 = cy + sep_px * np.cos(np.radians(pa_deg))
    yi, xi = int(round(y0)), int(round(x0))
    box = np.nan_to_num(image[yi - 5 : yi + 6, xi - 5 : xi + 6], nan=-np.inf)
    dy, dx = np.unravel_index(int(np.argmax(box)), box.shape)
    y, x = yi - 5 + dy, xi - 5 + dx
    return float(box[dy, dx]), float(np.degrees(np.arctan2(-(x - cx), y - cy)) % 360.0)


@pytest.mark.slow
def test_imaging_companion_at_its_pa_in_the_level1_sense(tmp_path) -> None:
    night = simulate_zimpol_night(tmp_path / "raw", mode="imaging", seed=2)
    path = level1.reduce_imaging([f.path for f in night.files], tmp_path / "l1")
    product = level1.read_level1_zimpol(path)
    assert product.header["HIERARCH HCDC ROTSENSE"] == "CCW"
    with fits.open(path) as hdul:
        assert level1_convention(hdul["DEROT"].header, prefix="") == "derotation"
    convention = level1_convention(product.header)
    assert convention == "derotation"
    assert product.derot.max() - product.derot.min() > 10.0
    truth = night.companion_truth()[0]
    sep_px = truth["separation_mas"] / zc.REDUCED_PIXEL_SCALE_MAS
    cube = product.cube[0].astype(float)
    cube = cube - np.median(cube, axis=0)  # classical ADI
    results = {}
    for name in (convention, "hcdc-clockwise"):
        angles, _ = derotation_angles(product.derot, name, pupil_offset_deg=0.0)
        final = np.mean(derotate(cube, angles, fill_value=0.0), axis=0)
        results[name] = _companion_flux(final, sep_px, truth["pa_deg"])
    peak, pa = results["derotation"]
    old_peak, _ = results["hcdc-clockwise"]
    assert (pa - truth["pa_deg"] + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=2.0), results
    assert old_peak < 0.5 * peak, results
