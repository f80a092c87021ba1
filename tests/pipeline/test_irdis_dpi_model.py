"""IRDIS DPI under the Mueller-matrix instrument model (issue #17): field tracking recovered by the
model-based correction of ``irdis-dpi`` 1.1; the 1.0 ideal-instrument reduction still right on
data of its own model; both recipe versions registered.

Known answers (seeded simulations, 'small', 4 HWP cycles): Q_phi = P x ``stokes_scale`` within
5 % in 2-px rings, U_phi ~ 0, angle of linear polarisation within 1 deg of the azimuthal one, the
instrumental polarisation removed below 0.1 % of I in the halo.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcdc.instruments.sphere.irdis import level1 as l1
from hcdc.instruments.sphere.irdis.dpi_reduction import DPIOptions, read_dpi_product, reduce_dpi
from hcdc.instruments.sphere.irdis.simulate_dpi import simulate_irdis_dpi_night
from hcdc.science.geometry import distance_map, position_angle_map
from hcdc.science.simulation.dpi import PolarisedRing

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


def _level1(tmp_path_factory, name: str, **kwargs):
    base = tmp_path_factory.mktemp(name)
    night = simulate_irdis_dpi_night(base / "raw", scale="small", n_cycles=4, **kwargs)
    raw = [f.path for f in night.files]
    l1.reduce_irdis(l1.roles_from_headers(raw), base / "l1")
    return night, base, raw


def _truth(night, n):
    pol = night.polarimetry
    ring = PolarisedRing(
        peak=pol["ring"]["peak_adu_s"],
        radius_px=pol["ring"]["radius_px"],
        width_px=pol["ring"]["width_px"],
        dolp=pol["ring"]["dolp"],
        asymmetry=pol["ring"]["asymmetry"],
        asymmetry_pa_deg=pol["ring"]["asymmetry_pa_deg"],
    )
    return pol["stokes_scale"] * ring.truth_map((n, n)), distance_map((n, n)), position_angle_map((n, n))


def _check_known_answers(product, night, *, halo_limit=1e-3):
    truth, r, pa = _truth(night, product.q_phi.shape[0])
    peak = truth.max()
    for r0 in range(22, 40, 2):
        ring = (r >= r0) & (r < r0 + 2)
        assert product.q_phi[ring].mean() / truth[ring].mean() == pytest.approx(1.0, abs=0.05), r0
        assert abs(product.u_phi[ring].mean()) < 0.01 * peak, r0
    disc = (r > 25) & (r < 35)
    for start in range(0, 360, 45):  # the bright side where the truth has it: derotation
        sector = disc & (((pa - start) % 360) < 45)
        assert product.q_phi[sector].mean() / truth[sector].mean() == pytest.approx(1.0, abs=0.05), start
    bright = truth > 0.3 * peak
    offset = (product.aolp - (pa + 90.0) + 90.0) % 180.0 - 90.0
    assert abs(offset[bright].mean()) < 1.0 and np.median(np.abs(offset[bright])) < 1.0
    halo = (r >= 8) & (r < 18)
    assert abs(np.median(product.q[halo] / product.i[halo])) < halo_limit
    assert abs(np.median(product.u[halo] / product.i[halo])) < halo_limit


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return _level1(tmp_path_factory, "dpi-field", seed=5, tracking="FIELD")


def test_field_tracking_headers_follow_the_derotator(field):
    from astropy.io import fits

    night, _base, _raw = field
    assert night.polarimetry["tracking"] == "FIELD" and night.polarimetry["instrument"] == "mueller"
    obj = next(f for f in night.files if f.dpr_type == "OBJECT")
    h = fits.getheader(obj.path)
    assert h["HIERARCH ESO INS4 COMB ROT"] == "FIELD" and h["HIERARCH ESO INS4 DROT2 MODE"] == "SKY"
    # field tracking: DROT2 = (POSANG + alt - parang) / 2 (mod 180) at the start of the file
    expected = 0.5 * (0.0 + h["HIERARCH ESO TEL ALT"] - h["HIERARCH ESO TEL PARANG START"])
    assert (h["HIERARCH ESO INS4 DROT2 BEGIN"] - expected + 90.0) % 180.0 - 90.0 == pytest.approx(
        0.0, abs=0.01
    )


def test_field_tracking_recovered_by_the_model(field, tmp_path):
    night, base, raw = field
    product = read_dpi_product(reduce_dpi(base / "l1", raw, tmp_path, DPIOptions(previews=False)))
    assert product.header["HIERARCH HCDC TRACKING"] == "FIELD"
    # in field tracking the efficiency changes from cycle to cycle as the derotator turns
    assert np.ptp(product.cycles["EFF_Q"]) > 0.02
    assert np.allclose(product.cycles["DEROT"], 360.0 - 1.75)  # POSANG 0 + true north, fixed
    _check_known_answers(product, night)


def test_field_tracking_without_the_model_is_wrong(field, tmp_path):
    night, base, raw = field
    old = read_dpi_product(
        reduce_dpi(base / "l1", raw, tmp_path, DPIOptions(previews=False, instrument_model=False))
    )
    truth, r, _pa = _truth(night, old.q_phi.shape[0])
    ring = (r >= 26) & (r < 34)
    assert abs(old.q_phi[ring].mean() / truth[ring].mean() - 1.0) > 0.2


def test_version_1_0_still_right_on_its_own_ideal_model(tmp_path_factory, tmp_path):
    night, base, raw = _level1(tmp_path_factory, "dpi-ideal", seed=3, instrument="ideal")
    assert json.loads(night.truth_json.read_text())["polarimetry"]["instrument"] == "ideal"
    product = read_dpi_product(
        reduce_dpi(base / "l1", raw, tmp_path, DPIOptions(previews=False, instrument_model=False))
    )
    _check_known_answers(product, night)


def test_both_recipe_versions_registered():
    import hcdc.pipeline.recipes.irdis_dpi  # noqa: F401  (registers the versions)
    from hcdc.pipeline.registry import get_recipe

    assert get_recipe("irdis-dpi").version == "1.1"
    old = get_recipe("irdis-dpi", "1.0")
    assert old.version == "1.0" and old.Parameters().instrument_model is False
    with pytest.raises(ValueError, match="no instrument model"):
        old.Parameters(instrument_model=True)
    assert get_recipe("irdis-dpi", "1.1").Parameters().instrument_model is True


def test_model_inputs_checked_with_the_file_named(field, tmp_path):
    from astropy.io import fits

    from hcdc.instruments.sphere.irdis.dpi_reduction import DPIError

    night, base, raw = field
    objects = [f.path for f in night.files if f.dpr_type == "OBJECT"]
    others = [p for p in raw if p not in objects]
    for key, value, message in (
        (
            "HIERARCH ESO INS4 COMB ROT",
            "PUPIL",
            "INS4 COMB ROT must be PUPIL or FIELD, the same for all files",
        ),
        ("HIERARCH ESO INS1 FILT ID", "FILT_BBF_L", "no polarimetric model for filter 'FILT_BBF_L'"),
    ):
        spoiled = tmp_path / key.split()[-1] / objects[0].name
        spoiled.parent.mkdir()
        with fits.open(objects[0]) as hdul:
            hdul[0].header[key] = value
            hdul.writeto(spoiled)
        with pytest.raises(DPIError, match=message):
            reduce_dpi(base / "l1", [spoiled, *objects[1:], *others], tmp_path / f"out-{key.split()[-1]}")
