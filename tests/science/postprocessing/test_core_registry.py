"""The algorithm registry contract shared by all post-processing algorithms."""

import numpy as np
import pytest

from hcdc.science.postprocessing import ALGORITHMS, get_algorithm, register_algorithm
from hcdc.science.postprocessing.base import check_adi_inputs, collapse_frames, derotate_and_collapse


def test_core_algorithms_are_registered():
    for name in ("pca", "pca_annular", "cadi"):
        spec = get_algorithm(name)
        assert spec.name == name and not spec.spectral and not spec.needs_reference
        assert spec.doc  # first docstring line


def test_unknown_algorithm_lists_known_names():
    with pytest.raises(KeyError, match="known algorithms: .*pca"):
        get_algorithm("no_such_algorithm")


def test_registering_another_function_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):

        @register_algorithm("pca")
        def impostor(cube, angles, *, fwhm):  # pragma: no cover - never called
            return cube[0]

    assert ALGORITHMS["pca"].function.__name__ == "pca"


def test_bad_names_and_inputs_are_rejected():
    with pytest.raises(ValueError):
        register_algorithm("Bad Name")
    with pytest.raises(ValueError, match="3 derotation angles"):
        check_adi_inputs(np.zeros((4, 8, 8)), np.zeros(3))
    with pytest.raises(ValueError, match="fwhm"):
        check_adi_inputs(np.zeros((4, 8, 8)), np.zeros(4), fwhm=-1.0)
    with pytest.raises(ValueError, match="collapse"):
        collapse_frames(np.zeros((2, 3, 3)), "max")


def test_collapse_ignores_nan_only_where_needed():
    cube = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    cube[0, 0, 0] = np.nan
    med = collapse_frames(cube, "median")
    assert med[0, 0] == pytest.approx(np.nanmedian(cube[:, 0, 0]))
    assert med[1, 1] == pytest.approx(np.median(cube[:, 1, 1]))
    assert collapse_frames(cube, "mean")[0, 1] == pytest.approx(cube[:, 0, 1].mean())


def test_derotate_and_collapse_puts_a_rotating_point_north_up():
    # A point at PA 30 deg on the sky appears at PA 30 + angle in each frame.
    from hcdc.science import geometry

    angles = np.array([0.0, 20.0, 45.0])
    cube = np.zeros((3, 41, 41), dtype=np.float32)
    for k, a in enumerate(angles):
        x, y = geometry.polar_to_pixel(10.0, 30.0 + a, (41, 41))
        cube[k, round(y), round(x)] = 1.0
    for interpolation in ("bilinear", "bicubic"):
        image = derotate_and_collapse(cube, angles, "mean", interpolation)
        y, x = np.unravel_index(np.argmax(image), image.shape)
        sep, pa = geometry.pixel_to_polar(x, y, image.shape)
        assert sep == pytest.approx(10.0, abs=1.0) and pa == pytest.approx(30.0, abs=6.0)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_banded_derotation_for_large_cubes_equals_the_whole_cube_path(interpolation):
    from hcdc.science.simulation.adi import simulate_adi_cube

    sim = simulate_adi_cube(companions=[(20.0, 30.0, 1e-3)], n_frames=12, seed=0)
    whole = derotate_and_collapse(sim.cube, sim.angles, "median", interpolation)
    banded = derotate_and_collapse(sim.cube, sim.angles, "median", interpolation, max_chunk=12 * 101 * 7)
    np.testing.assert_allclose(banded, whole, atol=1e-6 * np.abs(whole).max())
