"""Geometry conventions: centre, position angles, rotation sense, shifts."""

import numpy as np
import pytest

from hcdc.science import geometry as g


def point_image(shape, x, y):
    img = np.zeros(shape, dtype=np.float32)
    img[y, x] = 1.0
    return img


def peak_xy(img):
    y, x = np.unravel_index(np.nanargmax(img), img.shape)
    return int(x), int(y)


@pytest.mark.parametrize("n", [100, 101])
def test_frame_center_is_n_over_2(n):
    assert g.frame_center((n, n)) == (n // 2, n // 2)
    assert g.distance_map((n, n))[n // 2, n // 2] == 0


def test_position_angles_north_up_east_left():
    shape = (101, 101)
    c = 50
    assert g.pixel_to_polar(c, c + 10, shape) == pytest.approx((10, 0))  # north
    assert g.pixel_to_polar(c - 10, c, shape) == pytest.approx((10, 90))  # east = left
    assert g.pixel_to_polar(c, c - 10, shape) == pytest.approx((10, 180))
    assert g.pixel_to_polar(c + 10, c, shape) == pytest.approx((10, 270))
    x, y = g.polar_to_pixel(17.0, 211.2, shape)
    assert g.pixel_to_polar(x, y, shape) == pytest.approx((17.0, 211.2))
    assert g.theta_to_pa(g.pa_to_theta(33.0)) == pytest.approx(33.0)


def test_rotation_is_counter_clockwise_and_derotation_clockwise():
    shape = (101, 101)
    img = point_image(shape, 60, 50)  # +x of centre (theta = 0)
    rotated = g.rotate_frame(img, 90.0, order=1)
    assert peak_xy(rotated) == (50, 60)  # counter-clockwise: +x -> +y
    cube = np.stack([img, img])
    out = g.derotate(cube, np.array([90.0, -90.0]), order=1)
    assert peak_xy(out[0]) == (50, 40)  # clockwise: +x -> -y
    assert peak_xy(out[1]) == (50, 60)


def test_shift_moves_content_towards_positive_axes():
    img = point_image((64, 64), 32, 32)
    for method in ("fourier", "spline"):
        assert peak_xy(g.shift_frame(img, 3, -5, method)) == (27, 35)
