"""The Mueller-matrix model of IRDIS DPI (``hcdc.instruments.sphere.irdis.mueller``): element
matrices, the published parameters, the geometry that ties the derotator to the image rotation
(checked on the real pupil-tracking headers of shared/data), and what the model predicts."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.instruments.sphere.irdis import mueller as m


def _pol(angle_deg: float, p: float = 1.0) -> np.ndarray:
    t = np.radians(2.0 * angle_deg)
    return np.array([1.0, p * np.cos(t), p * np.sin(t), 0.0])


def test_rotation_matrix_turns_the_reference_frame():
    # light polarised at 30 deg is at 30 - 20 = 10 deg in a frame turned by 20 deg
    assert m.rotation_matrix(20.0) @ _pol(30.0) == pytest.approx(_pol(10.0))
    assert m.rotation_matrix(np.array([0.0, 90.0])).shape == (2, 4, 4)
    assert m.rotation_matrix(90.0) @ _pol(0.0) == pytest.approx(_pol(90.0))  # Q -> -Q


def test_element_matrices():
    mirror = m.diattenuating_retarder(0.0, 180.0)
    assert mirror == pytest.approx(np.diag([1.0, 1.0, -1.0, -1.0]))  # ideal mirror: U, V flip
    hwp = m.rotation_matrix(-22.5) @ m.diattenuating_retarder(0.0, 180.0) @ m.rotation_matrix(22.5)
    assert hwp @ _pol(0.0) == pytest.approx(_pol(45.0))  # HWP at 22.5 deg: Q -> U
    pol = m.polariser_matrix(1.0)
    assert (pol @ _pol(0.0))[0] == pytest.approx(1.0) and (pol @ _pol(90.0))[0] == pytest.approx(0.0)
    leaky = m.diattenuating_retarder(0.01, 170.0)
    assert (leaky @ np.array([1.0, 0, 0, 0]))[1] == pytest.approx(0.01)  # unpolarised -> 1 % Q
    with pytest.raises(ValueError, match="diattenuation"):
        m.diattenuating_retarder(1.5, 180.0)
    with pytest.raises(ValueError, match="polariser"):
        m.polariser_matrix(-2.0)


def test_published_parameters_by_filter_and_date():
    before = m.model_parameters("FILT_BBF_H", "2016-05-01")
    after = m.model_parameters("FILT_BBF_H", "2018-12-02T05:00:00")
    assert before.epsilon_ut == pytest.approx(0.01293, abs=1e-5) and after.epsilon_ut == pytest.approx(
        0.00903, abs=1e-5
    )
    assert after.delta_der == pytest.approx(99.32, abs=0.01) and after.d_ci == pytest.approx(0.9955, abs=1e-4)
    assert m.model_parameters("FILT_NBF_ContH", "2019-01-01") == after  # narrow band -> its broad band
    with pytest.raises(ValueError, match="no polarimetric model for filter 'FILT_BBF_L'"):
        m.model_parameters("FILT_BBF_L", "2019-01-01")


@pytest.mark.parametrize("tracking", ["PUPIL", "FIELD"])
def test_ideal_optics_without_hwp_let_the_polarisation_turn_with_the_image(tracking):
    """With perfect mirrors and no retardance in place of the HWP, the analyser is fixed on the
    detector: the sky angle it passes is ``-(image derotation angle) + const``, for any parallactic
    angle and altitude (the geometry that :func:`mueller.image_derotation_angle` encodes)."""
    ideal = m.ModelParameters.ideal()
    no_hwp = m.ModelParameters(**{**ideal.__dict__, "delta_hwp": 0.0})
    rng = np.random.default_rng(1)
    consts = []
    for p, a in zip(rng.uniform(-180, 180, 6), rng.uniform(30, 85, 6), strict=True):
        theta_der = m.derotator_angle(m.drot2_keyword(p, a, tracking, 10.0), tracking)
        derot = m.image_derotation_angle(p, a, theta_der)
        row = m.beam_rows(p, a, 0.0, theta_der, no_hwp)[0]  # ordinary beam
        angles = np.arange(0.0, 180.0, 0.25)
        passed = angles[np.argmax([row @ _pol(c) for c in angles])]
        consts.append((passed - derot) % 180.0)  # sky angle passed, in the frame turned with the image
        if tracking == "FIELD":
            assert derot == pytest.approx((10.0 + m.TRUE_NORTH_DEG) % 360.0)
        else:
            assert derot == pytest.approx((p + 135.99 + m.TRUE_NORTH_DEG) % 360.0)
    assert np.ptp(np.unwrap(np.radians(consts), period=np.pi)) < np.radians(0.5)


def test_hwp_upstream_of_the_derotator_turns_the_analyser_the_other_way():
    """With the HWP in, the analysed angle moves by -2 x the derotator angle, not with the image:
    what the 1.0 reduction ignored."""
    ideal = m.ModelParameters.ideal()
    angles = np.arange(0.0, 180.0, 0.25)

    def passed(theta_der):
        row = m.beam_rows(0.0, 60.0, 0.0, theta_der, ideal)[0]
        return angles[np.argmax([row @ _pol(c) for c in angles])]

    assert (passed(10.0) - passed(0.0)) % 180.0 == pytest.approx(180.0 - 20.0, abs=0.3)


def test_model_ip_and_efficiency_in_h_band():
    """The published H-band model near transit of a southern target in pupil tracking: an IP of
    a few 0.1 % and an efficiency of 0.85-0.9 (van Holstein et al. 2020 show percent-level IP and
    efficiencies dropping well below 1 at some derotator angles)."""
    params = m.model_parameters("FILT_BBF_H", "2018-12-02")
    p, a = 180.0, 67.8
    theta_der = m.derotator_angle(m.drot2_keyword(p, a, "PUPIL"), "PUPIL")
    rows = [m.beam_rows(p, a, h, theta_der, params) for h in (0.0, 45.0)]
    x_dd, x_ds = m.double_difference_rows(*rows)
    assert x_ds[0] == pytest.approx(1.0, abs=0.02)
    assert 1e-4 < abs(x_dd[0]) < 0.02
    assert 0.8 < np.hypot(x_dd[1], x_dd[2]) < 0.95
    ideal_rows = [m.beam_rows(p, a, h, theta_der, m.ModelParameters.ideal()) for h in (0.0, 45.0)]
    x_ideal, _ = m.double_difference_rows(*ideal_rows)
    assert x_ideal[0] == pytest.approx(0.0, abs=1e-12) and np.hypot(x_ideal[1], x_ideal[2]) == pytest.approx(
        1.0
    )


def test_bad_tracking_modes():
    with pytest.raises(ValueError, match="PUPIL or FIELD"):
        m.derotator_angle(10.0, "STAT")
    with pytest.raises(ValueError, match="PUPIL or FIELD"):
        m.drot2_keyword(0.0, 50.0, "SKY")
    with pytest.raises(ValueError, match="beam"):
        m.system_matrix("left", 0, 50, 0, 0, m.ModelParameters.ideal())


@pytest.mark.shared_data
def test_pupil_tracking_derotator_follows_half_the_altitude_on_real_headers(shared_data):
    """Real SPHERE pupil-tracking headers: ``INS4 DROT2 = alt / 2 + 180`` (the relation the DPI
    simulator writes), with the altitude computed at the right time (apparent pointing
    ``INS4 DROT2 RA/DEC``, Paranal, the file's timing):

    * ``DROT2 END`` is the derotator at ``DET FRAM UTC`` (end of the last DIT) on every file, to
      0.01 deg;
    * ``DROT2 BEGIN`` is the derotator at ``DATE-OBS`` on the OBJECT,CENTER (6 x 64 s) and
      OBJECT,FLUX (10 x 12 s) files, but on the four 8 x 64 s OBJECT files it was read 400-440 s
      after ``DATE-OBS`` (0.5-0.7 deg below the start's value): the "offset" once noted here is a
      late reading of BEGIN, not another relation. ``TEL ALT`` is the altitude at ``DATE-OBS``.
    """
    from astropy.time import Time, TimeDelta

    from hcdc.instruments.eso_headers import read_header_text
    from hcdc.instruments.sphere import constants as sc
    from hcdc.science.calibration import timing

    def altitude(header, when: Time) -> np.ndarray:
        ra, dec = sc.read_pointing(header)
        return timing.altitude_azimuth_airmass(when, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]

    seen = 0
    for path in sorted((shared_data / "sphere_headers").glob("*.hdr.txt")):
        h = read_header_text(path)
        if str(h.get("HIERARCH ESO INS4 DROT2 MODE", "")).strip() != "ELEV":
            continue
        seen += 1
        start, end = Time(h["DATE-OBS"]), Time(h["HIERARCH ESO DET FRAM UTC"])
        begin_kw, end_kw = float(h["HIERARCH ESO INS4 DROT2 BEGIN"]), float(h["HIERARCH ESO INS4 DROT2 END"])
        alt_start, alt_end = altitude(h, Time([start, end]))
        assert float(h["HIERARCH ESO TEL ALT"]) == pytest.approx(alt_start, abs=0.02)
        assert end_kw == pytest.approx(float(m.drot2_keyword(0.0, alt_end, "PUPIL")), abs=0.01)
        if h["HIERARCH ESO DPR TYPE"] in ("OBJECT,CENTER", "OBJECT,FLUX"):
            assert begin_kw == pytest.approx(float(m.drot2_keyword(0.0, alt_start, "PUPIL")), abs=0.01)
        else:
            grid_s = np.arange(0.0, (end - start).sec, 1.0)
            model = m.drot2_keyword(0.0, altitude(h, start + TimeDelta(grid_s, format="sec")), "PUPIL")
            read_at_s = grid_s[np.argmin(np.abs(model - begin_kw))]
            assert 380.0 < read_at_s < 460.0
            assert 0.45 < float(m.drot2_keyword(0.0, alt_start, "PUPIL")) - begin_kw < 0.75
    assert seen == 6
