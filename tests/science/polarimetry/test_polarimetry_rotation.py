"""Rotation of Stokes maps: image and polarisation vectors turn together."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.geometry import distance_map, rotate_frame
from hcdc.science.polarimetry import (
    angle_of_linear_polarisation,
    azimuthal_stokes,
    derotate_stokes,
    position_angle_from_star,
    rotate_stokes,
)
from hcdc.science.simulation.dpi import DPIScene, simulate_dpi_beams


def _disc(shape=(96, 96)):
    sim = simulate_dpi_beams(DPIScene(shape=shape, disc_radius_px=25.0, n_cycles=1, photon_noise=False))
    return sim.truth.q, sim.truth.u, sim.disc_polarised


def test_blob_north_turned_to_east_keeps_its_polarisation_perpendicular_to_the_star():
    shape = (41, 41)
    y, x = np.indices(shape)
    blob = np.exp(-0.5 * ((y - 30) ** 2 + (x - 20) ** 2) / 1.5**2)  # 10 px north of the star
    q, u = -blob, 0.0 * blob  # angle 90 deg: east-west, perpendicular to the north direction
    q_r, u_r = rotate_stokes(q, u, 90.0, fill_value=0.0)
    assert np.unravel_index(np.argmax(np.hypot(q_r, u_r)), shape) == (20, 10)  # now 10 px east
    aolp = float(angle_of_linear_polarisation(q_r[20, 10], u_r[20, 10]))
    assert min(aolp, 180.0 - aolp) == pytest.approx(0.0, abs=1e-6)  # 0 deg (180 is the same angle)
    assert q_r[20, 10] > 0.9  # +Q: north-south, again perpendicular to the star direction


@pytest.mark.parametrize("angle", [30.0, -73.0])
def test_qphi_and_uphi_are_invariant_under_rotation(angle):
    q, u, p = _disc()
    q_r, u_r = rotate_stokes(q, u, angle)
    qphi, uphi = azimuthal_stokes(q_r, u_r)
    ring = (distance_map(q.shape) > 18) & (distance_map(q.shape) < 32)
    np.testing.assert_allclose(qphi[ring], p[ring], atol=0.01 * p.max())  # spline resampling only
    assert np.abs(uphi[ring]).max() < 0.01 * p.max()
    # rotating Q and U as plain images (no 2-angle vector turn) is wrong: Q_phi leaks into U_phi
    naive_q, naive_u = rotate_frame(q, angle), rotate_frame(u, angle)
    _, naive_uphi = azimuthal_stokes(naive_q, naive_u)
    assert np.abs(naive_uphi[ring]).max() > 0.5 * p.max()


def test_uniform_plus_q_turned_by_30_degrees_has_angle_30():
    q, u = np.ones((33, 33)), np.zeros((33, 33))
    q_r, u_r = rotate_stokes(q, u, 30.0)
    centre = distance_map(q.shape) < 10
    np.testing.assert_allclose(angle_of_linear_polarisation(q_r, u_r)[centre], 30.0, atol=1e-6)


def test_derotate_stokes_undoes_rotation_per_frame():
    q, u, p = _disc()
    angles = np.array([10.0, 47.0, -25.0])
    turned = [rotate_stokes(q, u, a, fill_value=0.0) for a in angles]  # finite: NaNs would spread
    q_cube, u_cube = np.stack([t[0] for t in turned]), np.stack([t[1] for t in turned])
    dq, du = derotate_stokes(q_cube, u_cube, angles)
    ring = (distance_map(q.shape) > 18) & (distance_map(q.shape) < 32)
    for k in range(angles.size):
        np.testing.assert_allclose(dq[k][ring], q[ring], atol=0.01 * p.max())
        np.testing.assert_allclose(du[k][ring], u[ring], atol=0.01 * p.max())
    assert position_angle_from_star(q.shape).shape == q.shape
    with pytest.raises(ValueError, match="one angle per frame"):
        derotate_stokes(q_cube, u_cube, angles[:2])
