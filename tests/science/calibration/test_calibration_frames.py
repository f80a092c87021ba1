"""Masters, flats, bad pixels and background on arrays with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.calibration import background, badpixels, darks, flats


def test_master_frame_rejects_cosmic_rays():
    rng = np.random.default_rng(0)
    truth = rng.uniform(90, 110, size=(40, 50)).astype(np.float32)
    stack = truth + rng.normal(0, 2.0, size=(15, 40, 50)).astype(np.float32)
    stack[3, 10, 10] += 5000.0  # cosmic ray
    stack[7, 20, 30] += 800.0
    master = darks.master_frame(stack, "mean", sigma=5)
    assert abs(master[10, 10] - truth[10, 10]) < 3.0
    assert abs(master[20, 30] - truth[20, 30]) < 3.0
    # Noise of a 15-frame mean is 2/sqrt(15) ~ 0.52; clipping must not bias the rest.
    assert np.std(master - truth) == pytest.approx(2.0 / np.sqrt(15), rel=0.15)
    plain = stack.mean(axis=0)
    assert plain[10, 10] - truth[10, 10] > 300  # what the clipping prevented
    median = darks.master_frame(stack, "median")
    assert abs(median[10, 10] - truth[10, 10]) < 3.0
    with pytest.raises(ValueError, match="unknown combination"):
        darks.master_frame(stack, "mode")


def _detector_with_bad_pixels(rng, shape=(128, 256), n_hot=60):
    bad = np.zeros(shape, dtype=bool)
    idx = rng.choice(bad.size, n_hot, replace=False)
    bad.flat[idx] = True
    return bad


def test_hot_pixels_recall_precision():
    rng = np.random.default_rng(1)
    truth = _detector_with_bad_pixels(rng)
    yy, xx = np.indices(truth.shape)
    dark = 50 + 0.05 * xx + 10 * np.sin(yy / 30.0) + rng.normal(0, 1.0, truth.shape)  # smooth + noise
    dark[truth] += rng.choice([-1, 1], truth.sum()) * rng.uniform(15, 500, truth.sum())
    found = badpixels.hot_pixels(dark, sigma=5)
    tp = np.sum(found & truth)
    recall, precision = tp / truth.sum(), tp / found.sum()
    # Measured: recall 1.0, precision 1.0 (15 sigma hot pixels, 5 sigma threshold).
    assert recall >= 0.98 and precision >= 0.98


def test_correct_bad_pixels_interpolates_smooth_image():
    rng = np.random.default_rng(2)
    yy, xx = np.indices((64, 64)).astype(np.float32)
    image = 100 + 2 * xx + 0.5 * yy
    bad = _detector_with_bad_pixels(rng, image.shape, 80)
    bad[30:33, 30:33] = True  # a cluster
    damaged = image.copy()
    damaged[bad] = 1e6
    damaged[5, 5] = np.nan
    fixed = badpixels.correct_bad_pixels(damaged, bad)
    interior = np.zeros_like(bad)
    interior[4:-4, 4:-4] = True
    err = np.abs(fixed - image)[bad & interior]
    # A plane is reproduced by a symmetric weighted mean; asymmetric neighbourhoods (clusters) cost
    # at most about one pixel step of the gradient (2 ADU/px here).
    assert err.max() < 2.0 and np.median(err) < 0.1
    assert np.isfinite(fixed).all()
    assert np.array_equal(fixed[~bad & np.isfinite(damaged)], damaged[~bad & np.isfinite(damaged)])
    # Unusable pixels (dead zones) are neither used nor filled.
    dead = np.zeros_like(bad)
    dead[:, :8] = True
    kept = badpixels.correct_bad_pixels(np.where(dead, -1e9, damaged), bad & ~dead, unusable=dead)
    assert np.all(kept[:, :8] == -1e9)
    # The -1e9 dead pixels are not used: pixels next to them are off by at most ~1 gradient step.
    assert np.abs(kept - image)[bad & interior & ~dead].max() < 5.0


def test_fit_flat_recovers_gain_and_nonlinear_pixels():
    rng = np.random.default_rng(3)
    shape = (96, 192)
    gain = rng.normal(1.0, 0.03, shape)
    gain[:, 96:] *= 1.3  # right field brighter: normalised per field
    nonlinear = _detector_with_bad_pixels(rng, shape, 40)
    dead = _detector_with_bad_pixels(rng, shape, 20) & ~nonlinear
    levels = np.array([2000.0, 5000.0, 9000.0, 14000.0, 20000.0])
    frames = []
    for lev in levels:
        signal = gain * lev
        sat = np.where(nonlinear, np.minimum(signal, 4000.0 + 0.2 * signal), signal)  # saturating pixels
        sat = np.where(dead, 0.02 * signal, sat)
        frames.append(sat + rng.normal(0, np.sqrt(sat / 1.75 + 100)))
    result = flats.fit_flat(np.array(frames), n_fields=2)
    truth_flat = gain.copy()
    for sl in flats.field_slices(shape, 2):
        truth_flat[sl] /= np.median(gain[sl])
    good = ~(nonlinear | dead)
    # Photon noise of the 5 flats limits the slope to ~0.6 % per pixel (measured RMS 0.006).
    assert np.sqrt(np.mean((result.flat[good] - truth_flat[good]) ** 2)) < 0.008
    true_bad = nonlinear | dead
    tp = np.sum(result.bad & true_bad)
    recall, precision = tp / true_bad.sum(), tp / result.bad.sum()
    # Measured: recall 1.0, precision 1.0.
    assert recall >= 0.95 and precision >= 0.95
    assert np.all(result.flat[result.bad] == 1.0)
    with pytest.raises(ValueError, match="same level"):
        flats.fit_flat(np.array([frames[0], frames[0]]))


def test_background_priority_and_calibrate_frame():
    sky, bkg, dark = np.full((4, 8), 3.0), np.full((4, 8), 2.0), np.full((4, 8), 1.0)
    assert background.select_background({"DARK": dark, "SKY": sky, "DARK,BACKGROUND": bkg})[0] == "SKY"
    assert background.select_background({"DARK": dark, "DARK,BACKGROUND": bkg})[0] == "DARK,BACKGROUND"
    assert background.select_background({"DARK": dark})[0] == "DARK"
    with pytest.raises(LookupError, match="no background master"):
        background.select_background({"FLAT,LAMP": dark})

    rng = np.random.default_rng(4)
    truth = rng.uniform(10, 20, (32, 64)).astype(np.float32)
    flat = rng.uniform(0.9, 1.1, truth.shape).astype(np.float32)
    bkg = rng.uniform(100, 200, truth.shape).astype(np.float32)
    raw = truth * flat + bkg
    bad = np.zeros(truth.shape, dtype=bool)
    bad[10, 10] = True
    raw[10, 10] = 1e5
    dead = background.dead_zone_mask(truth.shape, ((0, 2),), ((30, 34),))
    out = background.calibrate_frame(raw, bkg, flat, bad, dead)
    assert np.isnan(out[0]).all() and np.isnan(out[:, 31]).all()
    ok = ~dead & ~bad
    assert np.allclose(out[ok], truth[ok], rtol=1e-5)
    assert 10 <= out[10, 10] <= 20
    fields = background.split_fields(out)
    assert fields.shape == (2, 32, 32)
    assert np.array_equal(fields[1], out[:, 32:], equal_nan=True)


def test_dead_zone_mask_scales_with_detector():
    full = background.dead_zone_mask(
        (1024, 2048), ((0, 15), (1013, 1024)), ((0, 50), (941, 1078), (1966, 2048))
    )
    small = background.dead_zone_mask(
        (128, 256),
        ((0, 15), (1013, 1024)),
        ((0, 50), (941, 1078), (1966, 2048)),
        reference_shape=(1024, 2048),
    )
    assert full.shape == (1024, 2048) and small.shape == (128, 256)
    assert small[:2].all() and not small[2:126, 7:117].any()
    assert abs(small.mean() - full.mean()) < 0.03
