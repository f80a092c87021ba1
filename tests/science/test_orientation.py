"""Angle conventions and orientation (hcdc.science.orientation), checked against derotate itself."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hcdc.science import geometry
from hcdc.science.orientation import Orientation, derotation_angles, oriented_cube
from hcdc.science.simulation.adi import simulate_adi_cube


@pytest.fixture(scope="module")
def sim():
    return simulate_adi_cube(n_frames=24, size=65, fwhm=4.0, rotation=80.0, companions=[(18.0, 70.0, 2e-2)])


def _peak_pa(cube: np.ndarray, derot: np.ndarray) -> float:
    image = np.median(geometry.derotate(cube - np.median(cube, axis=0), derot, fill_value=0.0), axis=0)
    y, x = np.unravel_index(np.argmax(image), image.shape)
    return geometry.pixel_to_polar(float(x), float(y), image.shape)[1]


def test_parallactic_is_vip_angle_list_and_offsets_orient_the_sky(sim):
    offset, north = 104.84, -0.45
    vip_angle_list = -sim.angles - offset - north  # what a VIP user holds for these frames
    derot, orientation = derotation_angles(vip_angle_list, "parallactic", offset, north)
    assert derot == pytest.approx(sim.angles)
    assert orientation.known and orientation.pa_reference == "sky"
    assert _peak_pa(sim.cube, derot) == pytest.approx(70.0, abs=3.0)
    # Without the offsets: orientation unknown, PA relative to the detector, turned by them.
    derot, orientation = derotation_angles(vip_angle_list)
    assert not orientation.known and orientation.pa_reference == "detector"
    assert (_peak_pa(sim.cube, derot) - (70.0 - offset - north)) % 360 == pytest.approx(0.0, abs=3.0)
    # vlt-sphere/VIP derotation angles turn the same way as parallactic ones (offsets added).
    derot, _ = derotation_angles(-sim.angles - 10.0, "derotation", 10.0, 0.0)
    assert derot == pytest.approx(sim.angles)
    # hcdc's old clockwise angles: the angles as they are, plus the offsets.
    derot, _ = derotation_angles(sim.angles - 10.0, "hcdc-clockwise", 10.0, 0.0)
    assert derot == pytest.approx(sim.angles)


def test_level1_convention_from_the_header():
    """A Level 1 product says ROTSENSE = 'CCW' since the sense was fixed; without it, its
    'derotation' angles are hcdc's old clockwise ones (so old products rerun as they were)."""
    from hcdc.science.orientation import level1_convention

    new = {"HIERARCH HCDC ANGCONV": "derotation", "HIERARCH HCDC ROTSENSE": "CCW"}
    assert level1_convention(new) == "derotation"
    assert level1_convention({"HIERARCH HCDC ANGCONV": "derotation"}) == "hcdc-clockwise"
    assert level1_convention({"ANGCONV": "derotation", "ROTSENSE": "CCW"}, prefix="") == "derotation"
    assert level1_convention({"ANGCONV": "parallactic"}, prefix="") == "parallactic"
    assert level1_convention({}) is None


def test_transposed_detector(sim):
    """A mirror detector (x and y swapped, as VIP's NACO cube): transposing the frames and
    turning the angles the other way gives the north-up image back."""
    mirrored = np.swapaxes(sim.cube, -1, -2)
    angles = sim.angles - 30.0  # parallactic angles, pupil offset 30, of the mirrored frames
    derot, orientation = derotation_angles(angles, "parallactic", 30.0, 0.0, transposed=True)
    cube = oriented_cube(mirrored, orientation)
    assert np.shares_memory(cube, mirrored) and np.array_equal(cube, sim.cube)
    assert derot == pytest.approx(sim.angles)
    assert _peak_pa(cube, derot) == pytest.approx(70.0, abs=3.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"convention": "vip"}, "angle convention must be one of parallactic, derotation"),
        ({"true_north_deg": -0.45}, "give the pupil offset too"),
        ({"transposed": True}, "needs the pupil offset"),
        ({"pupil_offset_deg": float("nan")}, "pupil offset must be a finite angle"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        derotation_angles(np.zeros(3), **kwargs)


def test_header_round_trip_and_pointing_checks():
    o = Orientation(True, "parallactic", 104.84, -0.45, True).with_pointing(86.82, -51.07)
    header = fits.Header()
    for key, value, comment in o.header_cards():
        header[key] = (value, comment)
    assert Orientation.from_header(header) == o
    assert Orientation.from_header(fits.Header()) == Orientation()  # absent: not known
    with pytest.raises(ValueError, match="both the target's RA and Dec"):
        o.with_pointing(10.0, None)
    with pytest.raises(ValueError, match=r"Dec must be in \[-90, 90\]"):
        o.with_pointing(10.0, -91.0)
