"""The sense in which frames are derotated, checked against its definitions (docs/conventions.md,
"Rotation sense").

* Numerically: hcdc's ``rotate_frame`` against OpenCV's rotation matrix (built from its documented
  formula: VIP's derotation) and ``scipy.ndimage.rotate`` (IRDAP's).
* Physically: a pupil-tracking, non-mirrored detector modelled from astropy's alt-az transform alone
  (zenith up on the detector): a companion at a known sky PA turns on it by minus the parallactic
  angle, so the frame must be turned counter-clockwise by ``DEROT`` = parang + offsets: hcdc's
  ``derotate`` with :func:`rotation_from_derotation`, and *not* with ``+DEROT`` (hcdc's sense
  before the fix, which puts the companion at the wrong PA and smears it).
* VIP's rule (frame ``k`` turned by ``-angle_list[k]`` with OpenCV's matrix) applied to the
  vlt-sphere angles of the same frames gives what ``derotation_angles(..., 'derotation')`` gives.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from scipy import ndimage

from hcdc.instruments.sphere import constants as sc
from hcdc.science import geometry
from hcdc.science.calibration.timing import parallactic_angle
from hcdc.science.orientation import derotation_angles, rotation_from_derotation


def _peak(image: np.ndarray) -> tuple[float, float]:
    """(x, y) offset of the brightest pixel from the frame centre."""
    y, x = np.unravel_index(np.nanargmax(image), image.shape)
    cy, cx = geometry.frame_center(image.shape)
    return float(x - cx), float(y - cy)


def _opencv_matrix(angle_deg: float, cx: float, cy: float) -> np.ndarray:
    """``cv2.getRotationMatrix2D((cx, cy), angle, 1)`` from OpenCV's documentation: the forward map
    (x, y) -> (x', y') of ``warpAffine`` (positive = counter-clockwise with the origin top-left)."""
    a, b = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]])


def _opencv_rotate(image: np.ndarray, angle_deg: float) -> np.ndarray:
    """OpenCV's ``warpAffine(image, getRotationMatrix2D(centre, angle, 1))`` (VIP's frame_rotate),
    evaluated with scipy: output pixel (x', y') takes the input at M^-1 (x', y')."""
    cy, cx = geometry.frame_center(image.shape)
    m = _opencv_matrix(angle_deg, cx, cy)
    inverse = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    # scipy works in (y, x): input (y, x) = A (y', x') + offset
    matrix = np.array([[inverse[1, 1], inverse[1, 0]], [inverse[0, 1], inverse[0, 0]]])
    offset = np.array([inverse[1, 2], inverse[0, 2]])
    return ndimage.affine_transform(image, matrix, offset=offset, order=1, cval=0.0)


def test_rotate_frame_is_counter_clockwise_and_opencv_scipy_are_clockwise():
    image = np.zeros((101, 101))
    image[50, 80] = 1.0  # 30 px along +x
    for name, turned in (
        ("hcdc", geometry.rotate_frame(image, 30.0, order=1, fill_value=0.0)),
        ("opencv", _opencv_rotate(image, 30.0)),
        ("scipy", ndimage.rotate(image, 30.0, reshape=False, order=1)),
    ):
        x, y = _peak(turned)
        angle = np.degrees(np.arctan2(y, x))  # counter-clockwise from +x, origin lower
        expected = 30.0 if name == "hcdc" else -30.0
        assert angle == pytest.approx(expected, abs=2.5), name
    # VIP derotates frame k with OpenCV by -angle_list[k]: hcdc's rotate_frame by +angle_list[k],
    # i.e. derotate with -angle_list (what rotation_from_derotation returns).
    blob = np.exp(-((np.arange(101)[:, None] - 50) ** 2 + (np.arange(101)[None] - 75) ** 2) / 8.0)
    vip = _opencv_rotate(blob, -40.0)
    hcdc = geometry.derotate(blob[None], rotation_from_derotation([40.0]), order=1, fill_value=0.0)[0]
    assert np.abs(vip - hcdc).max() < 0.02 * blob.max()


def _pupil_tracking_frames(target: SkyCoord, times: Time, sep_px: float, pa_deg: float, size: int = 65):
    """A companion at (sep_px, pa_deg) on the sky seen by a non-mirrored pupil-tracking detector,
    modelled from astropy's alt-az transform only: zenith along +y (the telescope pupil is fixed on
    the detector), azimuth increasing to +x (the sky seen from the ground, east left when north is
    up), then turned by a fixed instrument angle (IRDIS: the zenith at detector angle
    -(pupil offset + true north)). Returns the frames and the detector angle of the companion."""
    site = EarthLocation.from_geodetic(sc.PARANAL_LON_DEG * u.deg, sc.PARANAL_LAT_DEG * u.deg, 2635 * u.m)
    frame = AltAz(obstime=times, location=site, pressure=0 * u.hPa)
    companion = target.directional_offset_by(pa_deg * u.deg, 0.5 * u.arcsec)
    star_aa, comp_aa = target.transform_to(frame), companion.transform_to(frame)
    daz, dalt = star_aa.spherical_offsets_to(comp_aa)
    x, y = daz.to_value(u.arcsec), dalt.to_value(u.arcsec)
    zenith_angle = -(sc.PUPIL_OFFSET_DEG + sc.TRUE_NORTH_DEG)  # where the zenith sits on the detector
    theta = (np.degrees(np.arctan2(-x, y)) + zenith_angle) % 360.0  # from +y towards -x
    frames = np.zeros((times.size, size, size))
    cy, cx = geometry.frame_center(frames.shape)
    yy, xx = np.indices((size, size))
    for k, t in enumerate(theta):
        px, py = cx - sep_px * np.sin(np.radians(t)), cy + sep_px * np.cos(np.radians(t))
        frames[k] = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 1.5**2))
    return frames, theta


@pytest.mark.parametrize(("ra", "dec"), [(69.40, -2.47), (86.82, -51.07)])  # 51 Eri, beta Pic
def test_pupil_tracking_sky_turns_by_minus_the_parallactic_angle(ra, dec):
    target = SkyCoord(ra * u.deg, dec * u.deg)
    site_lst_transit = Time("2018-12-01T05:00:00", scale="utc")
    times = site_lst_transit + np.linspace(-1.5, 1.5, 13) * u.hour
    pa_sky, sep = 150.0, 20.0
    frames, theta = _pupil_tracking_frames(target, times, sep, pa_sky)
    parang = parallactic_angle(times, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)
    derot = parang + sc.PUPIL_OFFSET_DEG + sc.TRUE_NORTH_DEG  # vlt-sphere's DEROT
    assert np.ptp(parang) > 20.0  # the field does turn
    # The companion's detector angle is its sky PA minus DEROT (to precession, < 0.5 deg) ...
    wrapped = (theta + derot - pa_sky + 180.0) % 360.0 - 180.0
    assert np.abs(wrapped).max() < 0.5, wrapped
    # ... and not plus it (hcdc's sense before the fix).
    assert np.abs((theta - derot - pa_sky + 180.0) % 360.0 - 180.0).max() > 10.0
    # Turning frame k counter-clockwise by DEROT[k] stacks the companion at its sky PA.
    right = geometry.derotate(frames, rotation_from_derotation(derot), fill_value=0.0).mean(axis=0)
    x, y = _peak(right)
    assert np.hypot(x, y) == pytest.approx(sep, abs=0.8)
    assert (geometry.pixel_to_polar(x + 32, y + 32, right.shape)[1] - pa_sky + 180) % 360 - 180 == (
        pytest.approx(0.0, abs=2.0)
    )
    assert right.max() > 0.9  # every frame on the same spot
    # hcdc's old sense (derotate with +DEROT) smears it over twice the field rotation.
    wrong = geometry.derotate(frames, derot, fill_value=0.0).mean(axis=0)
    assert wrong.max() < 0.5 * right.max()


def test_vip_rule_on_vlt_sphere_angles_matches_the_derotation_convention():
    """What a VIP user gets from a vlt-sphere *_derot.fits (angle_list = DEROT, frame k turned by
    -angle_list[k] with OpenCV) is what hcdc's 'derotation' convention gives."""
    target = SkyCoord(69.40 * u.deg, -2.47 * u.deg)
    times = Time("2018-12-01T05:00:00", scale="utc") + np.linspace(-1.0, 1.0, 7) * u.hour
    frames, _ = _pupil_tracking_frames(target, times, 18.0, 250.0)
    derot = parallactic_angle(times, 69.40, -2.47, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)
    derot = derot + sc.PUPIL_OFFSET_DEG + sc.TRUE_NORTH_DEG
    vip = np.mean([_opencv_rotate(f, -a) for f, a in zip(frames, derot, strict=True)], axis=0)
    angles, orientation = derotation_angles(derot, "derotation", 0.0, 0.0)
    hcdc = geometry.derotate(frames, angles, order=1, fill_value=0.0).mean(axis=0)
    assert orientation.known
    assert np.abs(vip - hcdc).max() < 0.03
    assert _peak(vip) == _peak(hcdc)
    x, y = _peak(hcdc)
    assert geometry.pixel_to_polar(x + 32, y + 32, hcdc.shape)[1] == pytest.approx(250.0, abs=3.0)
