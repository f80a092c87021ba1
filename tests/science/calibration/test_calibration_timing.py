"""Per-DIT timing and parallactic angles against the real SPHERE headers' TEL PARANG START/END."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.time import Time, TimeDelta

from hcdc.instruments.eso_headers import read_header_text
from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration import timing


def _science_headers(shared_data):
    folder = shared_data / "sphere_headers"
    headers = [read_header_text(p) for p in sorted(folder.glob("*.hdr.txt"))]
    science = [h for h in headers if h["HIERARCH ESO DPR CATG"] == "SCIENCE"]
    assert len(science) == 6
    return science


@pytest.mark.shared_data
def test_parang_reproduces_real_headers(shared_data):
    worst = 0.0
    for h in _science_headers(shared_data):
        t = sc.read_timing(h)
        ra, dec = sc.read_pointing(h)
        start, _mid, end = timing.dit_times(t.date_obs, t.fram_utc, t.ndit, t.dit, t.ditdelay)
        pa_start = timing.parallactic_angle(start[:1], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]
        pa_end = timing.parallactic_angle(end[-1:], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]
        d_start = pa_start - h["HIERARCH ESO TEL PARANG START"]
        d_end = pa_end - h["HIERARCH ESO TEL PARANG END"]
        worst = max(worst, abs(d_start), abs(d_end))
    # Measured: worst 0.0137 deg over the 6 files.
    assert worst < 0.02


@pytest.mark.shared_data
def test_header_helpers_on_real_header(shared_data):
    h = _science_headers(shared_data)[1]  # SPHER.2020-03-08T07:12:03.720, OBJECT 64 s x 8
    t = sc.read_timing(h)
    assert (t.ndit, t.dit, t.ditdelay) == (8, 64.0, 0.2)
    ra, dec = sc.read_pointing(h)  # INS4 DROT2 RA = 124523.29766, DEC = -84656.84546
    assert ra == pytest.approx((12 + 45 / 60 + 23.29766 / 3600) * 15, abs=1e-9)
    assert dec == pytest.approx(-(8 + 46 / 60 + 56.84546 / 3600), abs=1e-9)
    rot = sc.read_derotator(h)
    assert rot.mode == "ELEV" and rot.begin_deg == pytest.approx(214.5106)


def test_read_derotator_accepts_start_rename():
    header = {"HIERARCH ESO INS4 DROT2 MODE": "ELEV", "HIERARCH ESO INS4 DROT2 START": 12.5}
    assert sc.read_derotator(header).begin_deg == 12.5
    with pytest.raises(KeyError, match="DROT2 MODE"):
        sc.read_derotator({})


def test_dit_times_model():
    start, mid, end = timing.dit_times("2020-01-01T00:00:00", "2020-01-01T00:01:00", 4, 10.0, 0.2)
    step = 15.0
    expected_start = Time("2020-01-01T00:00:00") + TimeDelta(np.arange(4) * step + 0.2, format="sec")
    assert np.allclose((start - expected_start).sec, 0, atol=1e-6)
    assert np.allclose((mid - start).sec, 5.0, atol=1e-6)
    assert np.allclose((end - start).sec, 10.0, atol=1e-6)
    with pytest.raises(ValueError, match="not after DATE-OBS"):
        timing.dit_times("2020-01-01T00:01:00", "2020-01-01T00:00:00", 4, 10.0, 0.2)


def test_parallactic_angle_geometry():
    # At transit (HA = 0) the parallactic angle is 0 for a target south of zenith (dec < lat) and
    # 180 for one north of it; east of the meridian it is negative for a target south of zenith.
    t = Time("2021-06-01T03:00:00")
    lst = timing.local_apparent_sidereal_time(t, sc.PARANAL_LON_DEG)[0]
    lat = sc.PARANAL_LAT_DEG
    assert timing.parallactic_angle(t, lst, -60.0, lat, sc.PARANAL_LON_DEG)[0] == pytest.approx(0, abs=1e-6)
    north = timing.parallactic_angle(t, lst, 10.0, lat, sc.PARANAL_LON_DEG)[0]
    assert north % 360 == pytest.approx(180, abs=1e-6)
    east = timing.parallactic_angle(t, lst + 30.0, -60.0, lat, sc.PARANAL_LON_DEG)[0]
    assert east < 0
    # The +360 branch keeps the angle continuous through transit north of zenith.
    pas = timing.parallactic_angle(t, lst + np.array([1.0, -1.0]), 10.0, lat, sc.PARANAL_LON_DEG)
    assert abs(pas[1] - pas[0]) < 10


def test_derotation_angles_and_drift_correction():
    parang = np.array([-10.0, 0.0, 25.0])
    derot = timing.derotation_angles(parang, sc.PUPIL_OFFSET_DEG, sc.TRUE_NORTH_DEG)
    assert np.allclose(derot, parang + 135.99 - 1.75)
    derot_ifs = timing.derotation_angles(
        parang, sc.PUPIL_OFFSET_DEG, sc.TRUE_NORTH_DEG, sc.IFS_INSTRUMENT_OFFSET_DEG
    )
    assert np.allclose(derot_ifs, parang + 135.99 - 1.75 - 100.48)
    # atan(tan(x)) folds x into (-90, 90): alt 60, drot 10 -> 40; alt 60, drot 80 -> -100 -> 80.
    assert timing.derotator_drift_correction(60.0, 10.0) == pytest.approx(40.0)
    assert timing.derotator_drift_correction(60.0, 80.0) == pytest.approx(80.0)
    assert timing.needs_derotator_correction("2016-07-11T23:59:00")
    assert not timing.needs_derotator_correction("2016-07-12T00:00:01")


def test_constants_spot_radius_and_nd():
    # sphere.md: IRDIS spot radius H2 46.0 px, H3 48.1, K1 60.9, K2 65.0, J2 34.4, Y2 29.5.
    for wave, radius in [(1593, 46.0), (1667, 48.1), (2110, 60.9), (2251, 65.0), (1190, 34.4), (1022, 29.5)]:
        assert sc.waffle_radius_px(wave) == pytest.approx(radius, abs=0.06)
    assert sc.nd_transmission("ND_1.0", 1593) == pytest.approx(0.116)
    assert sc.nd_transmission("ND_2.0", 2110) == pytest.approx(0.0221)
    assert sc.nd_transmission("OPEN", 1200) == 1.0
    assert sc.waffle_orientation_deg("x") == 45.0
    with pytest.raises(KeyError, match="ND_9"):
        sc.nd_transmission("ND_9", 1600)
    mask = sc.irdis_dead_zone_mask()
    assert mask[14, 500] and not mask[15, 500] and mask[500, 941] and mask[500, 1077] and not mask[500, 1078]
