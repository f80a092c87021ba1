"""Sign conventions and exact algebra of hcdc.science.polarimetry (noise-free inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.geometry import position_angle_map
from hcdc.science.polarimetry import (
    angle_of_linear_polarisation,
    azimuthal_stokes,
    correct_instrumental_polarisation,
    degree_of_linear_polarisation,
    double_difference,
    double_ratio,
    polarised_intensity,
    position_angle_from_star,
    stokes_from_beams,
)


def _ideal_beams(i, q, u, t_o=1.0, t_e=1.0, flux=(1.0, 1.0, 1.0, 1.0)):
    """Beams (4, 2, ny, nx) of an ideal dual-beam polarimeter: o = t_o (I+S)/2, e = t_e (I-S)/2."""
    signed = [q, -q, u, -u]
    return np.stack(
        [
            np.stack([f * t_o * 0.5 * (i + s), f * t_e * 0.5 * (i - s)])
            for f, s in zip(flux, signed, strict=True)
        ]
    )


def test_angle_of_linear_polarisation_is_east_of_north():
    one = np.ones(1)
    assert angle_of_linear_polarisation(one, 0 * one)[0] == pytest.approx(0.0)  # +Q: north-south
    assert angle_of_linear_polarisation(0 * one, one)[0] == pytest.approx(45.0)  # +U: NE-SW
    assert angle_of_linear_polarisation(-one, 0 * one)[0] == pytest.approx(90.0)  # -Q: east-west
    assert angle_of_linear_polarisation(0 * one, -one)[0] == pytest.approx(135.0)


def test_position_angle_from_star_matches_geometry_convention():
    shape = (33, 40)
    np.testing.assert_allclose(position_angle_from_star(shape), position_angle_map(shape), atol=1e-12)
    pa = position_angle_from_star((21, 21), center_yx=(10.0, 10.0))
    assert pa[20, 10] == pytest.approx(0.0)  # north (+y)
    assert pa[10, 0] == pytest.approx(90.0)  # east (-x)
    assert pa[0, 10] == pytest.approx(180.0)
    assert pa[10, 20] == pytest.approx(270.0)


def test_pure_plus_q_gives_positive_qphi_east_and_west_negative_north_and_south():
    shape = (21, 21)
    q, u = np.ones(shape), np.zeros(shape)
    qphi, uphi = azimuthal_stokes(q, u, center_yx=(10.0, 10.0))
    assert qphi[10, 0] == pytest.approx(1.0) and qphi[10, 20] == pytest.approx(1.0)  # east, west
    assert qphi[20, 10] == pytest.approx(-1.0) and qphi[0, 10] == pytest.approx(-1.0)  # north, south
    assert uphi[10, 0] == pytest.approx(0.0, abs=1e-12)
    # north-east (PA 45): +Q is 45 deg from the star direction, all of it in U_phi
    assert qphi[15, 5] == pytest.approx(0.0, abs=1e-12)
    assert uphi[15, 5] == pytest.approx(1.0)


def test_azimuthal_polarisation_gives_qphi_equal_p_and_zero_uphi():
    shape = (31, 31)
    phi = np.radians(position_angle_from_star(shape))
    p = np.linspace(1.0, 2.0, shape[0] * shape[1]).reshape(shape)
    q, u = -p * np.cos(2 * phi), -p * np.sin(2 * phi)  # angle = phi + 90 deg
    qphi, uphi = azimuthal_stokes(q, u)
    np.testing.assert_allclose(qphi, p, rtol=1e-12)
    np.testing.assert_allclose(uphi, 0.0, atol=1e-12)
    np.testing.assert_allclose(polarised_intensity(q, u), p, rtol=1e-12)
    aolp = angle_of_linear_polarisation(q, u)
    expected = (np.degrees(phi) + 90.0) % 180.0
    diff = (aolp - expected + 90.0) % 180.0 - 90.0
    assert np.abs(diff)[p > 0].max() < 1e-9


@pytest.mark.parametrize("method", ["double_difference", "double_ratio"])
def test_both_methods_are_exact_with_a_beam_transmission_mismatch(method):
    rng = np.random.default_rng(1)
    i = rng.uniform(100.0, 200.0, (8, 9))
    q, u = rng.uniform(-30, 30, i.shape), rng.uniform(-30, 30, i.shape)
    stokes = stokes_from_beams(_ideal_beams(i, q, u, t_o=1.0, t_e=0.9), method)
    scale = 0.5 * (1.0 + 0.9)  # common throughput of the two beams
    np.testing.assert_allclose(stokes.i, scale * i, rtol=1e-12)
    np.testing.assert_allclose(stokes.q / stokes.i, q / i, rtol=1e-10)
    np.testing.assert_allclose(stokes.u / stokes.i, u / i, rtol=1e-10)


def test_double_ratio_cancels_flux_changes_between_hwp_positions_double_difference_does_not():
    i = np.full((4, 4), 1000.0)
    q, u = np.full(i.shape, 50.0), np.zeros(i.shape)
    beams = _ideal_beams(i, q, u, t_o=1.0, t_e=0.9, flux=(1.05, 0.95, 1.0, 1.0))
    dr = stokes_from_beams(beams, "double_ratio")
    dd = stokes_from_beams(beams, "double_difference")
    np.testing.assert_allclose(dr.q / dr.i_q, 0.05, rtol=1e-10)
    # double difference leaks (f+ - f-)(t_o - t_e) I / 4 = 0.1 * 0.1 * 1000 / 4 = 2.5 into Q
    assert abs(dd.q[0, 0] / dd.i_q[0, 0] - 0.05) > 1e-3


def test_double_ratio_is_nan_where_a_beam_is_not_positive():
    beams = [np.array([10.0, 0.0]), np.array([10.0, 5.0]), np.array([10.0, 5.0]), np.array([10.0, 5.0])]
    s, i_s = double_ratio(*beams)
    assert s[0] == pytest.approx(0.0) and np.isnan(s[1])
    s_dd, _ = double_difference(*beams)
    assert np.isfinite(s_dd).all()


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 2, ny, nx\)"):
        stokes_from_beams(np.zeros((3, 2, 5, 5)))
    with pytest.raises(ValueError, match="unknown method"):
        stokes_from_beams(np.ones((4, 2, 5, 5)), "triple_ratio")
    with pytest.raises(ValueError, match="same shape"):
        double_difference(np.ones(3), np.ones(3), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="usable pixels"):
        correct_instrumental_polarisation(np.ones((9, 9)), np.zeros((9, 9)), np.zeros((9, 9)), 20.0, 30.0)


def test_instrumental_polarisation_exact_on_noise_free_maps():
    shape = (64, 64)
    y, x = np.indices(shape)
    i = 1000.0 / (1.0 + np.hypot(y - 32.0, x - 32.0))
    q, u = 0.02 * i, -0.01 * i
    ip = correct_instrumental_polarisation(i, q, u, 5.0, 15.0)
    assert ip.p_q == pytest.approx(0.02) and ip.p_u == pytest.approx(-0.01)
    np.testing.assert_allclose(ip.q, 0.0, atol=1e-10)
    np.testing.assert_allclose(ip.u, 0.0, atol=1e-10)
    dolp = degree_of_linear_polarisation(i, q, u)
    np.testing.assert_allclose(dolp, np.hypot(0.02, 0.01), rtol=1e-12)


def test_hwp_stokes_label_of_nominal_and_wrapped_angles():
    from hcdc.science.polarimetry import hwp_stokes_label

    assert [hwp_stokes_label(a) for a in (0.0, 45.0, 22.5, 67.5)] == ["Qplus", "Qminus", "Uplus", "Uminus"]
    assert hwp_stokes_label(90.3) == "Qplus" and hwp_stokes_label(-22.5) == "Uminus"
    assert hwp_stokes_label(359.6) == "Qplus"
    with pytest.raises(ValueError, match="not within"):
        hwp_stokes_label(10.0)


@pytest.mark.shared_data
def test_real_headers_hwp_encoder_offset_gives_qplus(shared_data):
    """Real IRDIS/IFS headers (HWP parked): INS4 DROT3 BEGIN - 152.15 (IRDAP's offset) = POSANG = 0."""
    from hcdc.instruments.eso_headers import read_header_text
    from hcdc.science.polarimetry import hwp_stokes_label

    headers = [read_header_text(p) for p in sorted((shared_data / "sphere_headers").glob("*.hdr.txt"))]
    with_hwp = [h for h in headers if "HIERARCH ESO INS4 DROT3 BEGIN" in h]
    assert len(with_hwp) == 8
    for h in with_hwp:
        angle = h["HIERARCH ESO INS4 DROT3 BEGIN"] - 152.15
        assert angle == pytest.approx(h["HIERARCH ESO INS4 DROT3 POSANG"], abs=1e-4)
        assert hwp_stokes_label(angle) == "Qplus"
