"""The detection threshold calibrated on a null S/N map (:mod:`hcdc.science.postprocessing.null_threshold`),
on synthetic noise of known law: Gaussian (the Student threshold is right: the calibration must
not move it much) and heavy-tailed (the Student threshold gives too many false alarms: the
calibrated one must be higher and give about the false-positive fraction it states).

False-positive fractions are measured where they can be: per pixel of independent noise maps at
``fpf`` = 1e-3 (the S/N of every pixel has the null law of a resolution element), not at 2.87e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from hcdc.science import geometry
from hcdc.science.postprocessing.detection import detect_candidates, student_threshold
from hcdc.science.postprocessing.null_threshold import (
    NU_RANGE,
    EmpiricalThreshold,
    calibrate_threshold,
    false_alarms_per_image,
    fit_tail_dof,
    gaussian_deviates,
    inverted_angles,
    tail_evidence,
    without_rings,
)
from hcdc.science.postprocessing.snr import snr_map

FWHM = 4.0
SIZE = 81


def _noise_map(rng: np.random.Generator, law: str) -> np.ndarray:
    """A residual-like image: white noise of ``law`` smoothed by a Gaussian of the FWHM (so that
    neighbouring pixels are correlated over a resolution element, as after a reduction).
    ``'student'``: Student t with 3 degrees of freedom per pixel; ``'patchy'``: Gaussian noise whose
    variance changes from one 8-px patch to the next (log-normal, like a speckle halo's)."""
    if law == "gaussian":
        white = rng.standard_normal((SIZE, SIZE))
    elif law == "student":
        white = rng.standard_t(3.0, (SIZE, SIZE))
    else:
        patches = rng.standard_normal((SIZE // 8 + 1, SIZE // 8 + 1))
        scale = np.exp(0.5 * np.kron(patches, np.ones((8, 8)))[:SIZE, :SIZE])
        white = rng.standard_normal((SIZE, SIZE)) * scale
    return ndimage.gaussian_filter(white, FWHM / (2.0 * np.sqrt(2.0 * np.log(2.0))))


@pytest.fixture(scope="module")
def maps() -> dict[str, list[np.ndarray]]:
    """Six independent S/N maps of each law (one calibrates, five measure)."""
    rng = np.random.default_rng(2026)
    return {
        law: [snr_map(_noise_map(rng, law), FWHM) for _ in range(6)]
        for law in ("gaussian", "student", "patchy")
    }


def _measured_fpf(maps: list[np.ndarray], limit: np.ndarray) -> float:
    """Fraction of the finite pixels of ``maps`` above ``limit`` (same shape)."""
    stack = np.stack(maps)
    ok = np.isfinite(stack)
    return float(np.mean(stack[ok] > np.broadcast_to(limit, stack.shape)[ok]))


def test_gaussian_deviates_are_standard_normal_under_the_student_law():
    rng = np.random.default_rng(1)
    separation = np.full(20000, 10.0)  # 15 apertures at 4 px: Student t with 13 dof
    dof = np.floor(2.0 * np.pi / (2.0 * np.arcsin(FWHM / 20.0))) - 2.0
    z = gaussian_deviates(stats.t.rvs(dof, size=20000, random_state=rng), separation, FWHM)
    assert abs(np.mean(z)) < 0.03 and abs(np.std(z) - 1.0) < 0.03
    assert fit_tail_dof(z) > 200  # Gaussian: at (or near) the upper bound


def test_tail_fit_recovers_a_known_student_law():
    z = stats.t.rvs(8.0, size=20000, random_state=np.random.default_rng(2))
    assert fit_tail_dof(z) == pytest.approx(8.0, rel=0.25)
    assert fit_tail_dof(np.random.default_rng(3).standard_normal(20000)) > 200
    assert tail_evidence(z, 8.0, z.size) > 100  # 20000 independent values: overwhelming
    with pytest.raises(ValueError, match="too few"):
        fit_tail_dof(np.ones(5))


def test_threshold_is_student_times_one_factor_and_states_its_own_fpf():
    calibrated = EmpiricalThreshold(nu=20.0, fpf=1e-3, fwhm=FWHM, n_pixels=100)
    seps = np.array([6.0, 12.0, 30.0])
    k = stats.t.isf(1e-3, 20.0) / stats.norm.isf(1e-3)
    assert calibrated.tail_factor == pytest.approx(k)
    np.testing.assert_allclose(calibrated.at(seps), k * student_threshold(seps, FWHM, 1e-3))
    np.testing.assert_allclose(calibrated.fpf_of(calibrated.at(seps), seps), 1e-3, rtol=1e-9)
    gaussian = EmpiricalThreshold(nu=NU_RANGE[1], fpf=2.87e-7, fwhm=FWHM, n_pixels=100)
    assert 1.0 <= gaussian.tail_factor < 1.01
    # per image: the resolution elements of every 1-FWHM ring times fpf
    n = np.floor(2.0 * np.pi / (2.0 * np.arcsin(FWHM / 2.0 / np.arange(8.0, 36.0, FWHM))))
    assert false_alarms_per_image(calibrated, 8.0, 36.0) == pytest.approx(n.sum() * 1e-3)


def test_gaussian_noise_keeps_about_the_student_threshold(maps):
    """On Gaussian noise the calibrated threshold stays within 20 % of the Student one (the fit of
    one small map may find a Student tail of ~30-100 dof by chance) and never below it; its
    measured false-positive fraction is at most the stated one."""
    factors = [calibrate_threshold(m, FWHM, fpf=1e-3).tail_factor for m in maps["gaussian"]]
    assert min(factors) >= 1.0 and max(factors) < 1.2 and np.median(factors) < 1.1, factors
    r = geometry.distance_map(maps["gaussian"][0].shape)
    calibrated = calibrate_threshold(maps["gaussian"][0], FWHM, fpf=1e-3)
    student = _measured_fpf(maps["gaussian"][1:], student_threshold(r, FWHM, 1e-3))
    measured = _measured_fpf(maps["gaussian"][1:], calibrated.at(r))
    assert 0.5e-3 < student < 2e-3  # the Student law holds
    assert measured <= student


@pytest.mark.parametrize("law", ["student", "patchy"])
def test_heavy_tailed_noise_gets_a_higher_threshold_with_the_stated_fpf(maps, law):
    """Heavy-tailed residuals: the Student threshold's measured false-positive fraction is well
    above the stated 1e-3; the calibrated threshold (from another map of the same noise) is higher
    and its measured fraction within a factor 2 of 1e-3."""
    r = geometry.distance_map(maps[law][0].shape)
    calibrated = calibrate_threshold(maps[law][0], FWHM, fpf=1e-3)
    student = _measured_fpf(maps[law][1:], student_threshold(r, FWHM, 1e-3))
    measured = _measured_fpf(maps[law][1:], calibrated.at(r))
    assert calibrated.tail_factor > 1.05 and calibrated.nu < 100, calibrated
    assert student > 1.6e-3, student
    assert 0.5e-3 < measured < 2e-3 and measured < student, (measured, student)


def test_detection_with_a_profile_reports_its_threshold_and_fpf(maps):
    image = maps["patchy"][1]  # an S/N map serves as its own image (peaks at the same place)
    calibrated = calibrate_threshold(maps["patchy"][0], FWHM, fpf=1e-2)
    found = detect_candidates(image, FWHM, profile=calibrated)
    student = detect_candidates(image, FWHM, fpf=1e-2)
    assert 0 < len(found) <= len(student)
    assert {(c.x, c.y) for c in found} <= {(c.x, c.y) for c in student}
    for c in found:
        assert c.threshold == pytest.approx(float(calibrated.at(c.separation)), rel=0.05)
        assert c.snr > c.threshold and c.fpf < 1e-2
    with pytest.raises(ValueError, match="not both"):
        detect_candidates(image, FWHM, threshold=5.0, profile=calibrated)


def test_several_null_maps_are_pooled_into_one_tail(maps):
    """A stack of null maps: one tail fitted to all of them (a stack of one is the one-map fit).
    Pooled Gaussian maps stay below the largest factor any of them gives alone; pooled heavy-tailed
    maps keep their heavy tail (the pooling does not average it away)."""
    one = calibrate_threshold(maps["gaussian"][0], FWHM)
    assert calibrate_threshold(np.stack(maps["gaussian"][:1]), FWHM) == one
    for law in ("gaussian", "student", "patchy"):
        single = [calibrate_threshold(m, FWHM) for m in maps[law]]
        pooled = calibrate_threshold(maps[law], FWHM)
        assert pooled.n_pixels == sum(s.n_pixels for s in single)
        if law == "gaussian":
            assert 1.0 <= pooled.tail_factor < min(1.2, max(s.tail_factor for s in single)), (pooled, single)
        else:
            assert pooled.nu < 30 and pooled.tail_factor > 1.3, pooled
    with pytest.raises(ValueError, match="2-D"):
        calibrate_threshold(np.zeros((2, 3, 9, 9)), FWHM)


def test_rings_of_candidates_stay_out_and_inputs_are_checked():
    valid = np.ones((41, 41), dtype=bool)
    kept = without_rings(valid, [10.0], FWHM)
    r = geometry.distance_map(valid.shape)
    assert not kept[np.abs(r - 10.0) <= FWHM].any() and kept[np.abs(r - 10.0) > FWHM].all()
    np.testing.assert_array_equal(inverted_angles(np.array([-3.0, 0.0, 40.0])), [3.0, -0.0, -40.0])
    with pytest.raises(ValueError, match="2-D"):
        calibrate_threshold(np.zeros(5), FWHM)
    with pytest.raises(ValueError, match="no finite"):
        calibrate_threshold(np.full((9, 9), np.nan), FWHM)
    with pytest.raises(ValueError, match="fpf"):
        calibrate_threshold(np.zeros((9, 9)), FWHM, fpf=0.7)
