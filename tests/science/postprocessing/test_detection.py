"""Candidate detection with a Student false-alarm criterion; 2-D Gaussian fits."""

import numpy as np
import pytest
from scipy import stats

from hcdc.science.postprocessing import snr
from hcdc.science.postprocessing.detection import (
    GAUSSIAN_5SIGMA_FPF,
    detect_candidates,
    fit_gaussian_2d,
    gaussian_fit_x_scale,
    student_threshold,
)
from hcdc.science.simulation.adi import gaussian_psf


def test_threshold_is_the_student_quantile_of_the_5_sigma_fpf():
    assert GAUSSIAN_5SIGMA_FPF == pytest.approx(2.8665e-7, rel=1e-3)
    sep, fwhm = 10.0, 4.0
    n = np.floor(2 * np.pi / (2 * np.arcsin(fwhm / 2 / sep)))
    assert student_threshold(sep, fwhm) == pytest.approx(stats.t.isf(GAUSSIAN_5SIGMA_FPF, n - 2))
    values = student_threshold(np.array([5.0, 10.0, 40.0, 1e4]), fwhm)
    assert np.all(np.diff(values) < 0) and values[-1] == pytest.approx(5.0, rel=0.01)
    with pytest.raises(ValueError):
        student_threshold(10.0, 4.0, fpf=0.7)


def test_detects_injected_sources_and_nothing_in_pure_noise():
    rng = np.random.default_rng(11)
    fwhm = 4.0
    noise = rng.normal(size=(81, 81))
    assert detect_candidates(snr.snr_map(noise, fwhm), fwhm) == []
    image = noise.copy()
    psf = gaussian_psf(fwhm, size=15, dx=0.3, dy=-0.2)
    image[55:70, 20:35] += 60 * psf  # centred on (27.3, 61.8)
    image[10:25, 48:63] += 60 * gaussian_psf(fwhm, size=15)  # centred on (55, 17)
    found = detect_candidates(snr.snr_map(image, fwhm), fwhm, image=image)
    assert len(found) == 2
    positions = sorted((c.x, c.y) for c in found)
    assert positions[0] == pytest.approx((27.3, 61.8), abs=0.3)
    assert positions[1] == pytest.approx((55.0, 17.0), abs=0.3)
    for c in found:
        assert c.snr > c.threshold and c.fpf < GAUSSIAN_5SIGMA_FPF


def test_gaussian_fit_recovers_a_dip_and_a_peak():
    yy, xx = np.mgrid[0:31, 0:31]
    dip = 5.0 - 3.0 * np.exp(-((xx - 14.6) ** 2 + (yy - 15.3) ** 2) / (2 * 2.0**2))
    fit = fit_gaussian_2d(dip, 15, 15, box=11, negative=True)
    assert (fit.x, fit.y) == pytest.approx((14.6, 15.3), abs=1e-3)
    assert fit.amplitude == pytest.approx(-3.0, rel=1e-3)
    assert fit.fwhm_x == pytest.approx(2.0 * 2.3548, rel=1e-3)
    with pytest.raises(ValueError, match="leaves"):
        fit_gaussian_2d(dip, 2, 2, box=11)


def _snr_peaks_near(snr_image: np.ndarray, x: float, y: float, radius: float, fwhm: float) -> int:
    """Local S/N maxima above the 5-sigma threshold within ``radius`` px of ``(x, y)``."""
    from scipy import ndimage

    from hcdc.science import geometry

    finite = np.nan_to_num(snr_image, nan=-np.inf)
    size = max(3, int(np.ceil(fwhm)) | 1)
    peaks = (finite == ndimage.maximum_filter(finite, size=size)) & (
        finite > student_threshold(geometry.distance_map(snr_image.shape), fwhm)
    )
    ys, xs = np.nonzero(peaks)
    return int(np.sum(np.hypot(xs - x, ys - y) <= radius))


@pytest.mark.parametrize("seed", [0, 2])
def test_a_pca_reduced_companion_is_detected_once_where_it_is(seed):
    from hcdc.science.postprocessing.pca import pca_annular
    from hcdc.science.simulation.adi import simulate_adi_cube

    fwhm = 4.0
    sim = simulate_adi_cube(
        n_frames=40, size=81, fwhm=fwhm, rotation=30.0, companions=[(30.0, 300.0, 3e-2)], seed=seed
    )
    image = pca_annular(sim.cube, sim.angles, fwhm=fwhm, ncomp=2)
    snr_image = snr.snr_map(image, fwhm)
    truth = sim.companions[0]
    # The case at hand: self-subtraction splits the companion's S/N into several peaks 1-2 FWHM
    # apart (they used to be reported as two candidates 1.4 px apart).
    assert _snr_peaks_near(snr_image, truth.x, truth.y, 2 * fwhm, fwhm) >= 2
    found = detect_candidates(snr_image, fwhm, image=image)
    assert len(found) == 1
    assert np.hypot(found[0].x - truth.x, found[0].y - truth.y) < 0.3
    # Its S/N is that of its highest peak.
    iy, ix = round(truth.y), round(truth.x)
    assert found[0].snr == pytest.approx(np.nanmax(snr_image[iy - 8 : iy + 9, ix - 8 : ix + 9]))


def test_two_sources_three_fwhm_apart_are_both_kept():
    rng = np.random.default_rng(5)
    fwhm = 4.0
    image = rng.normal(size=(81, 81))
    # (20.3, 30.4) and 3 FWHM = 12 px further along x, 4x fainter.
    image[23:38, 13:28] += 200 * gaussian_psf(fwhm, size=15, dx=0.3, dy=0.4)
    image[23:38, 25:40] += 50 * gaussian_psf(fwhm, size=15, dx=0.3, dy=0.4)
    found = detect_candidates(snr.snr_map(image, fwhm), fwhm, image=image)
    assert len(found) == 2
    positions = sorted((c.x, c.y) for c in found)
    assert positions[0] == pytest.approx((20.3, 30.4), abs=0.3)
    assert positions[1] == pytest.approx((32.3, 30.4), abs=0.3)
    # Closer than the minimum separation they are one candidate.
    assert len(detect_candidates(snr.snr_map(image, fwhm), fwhm, image=image, min_separation=3.5 * fwhm)) == 1


def _zero_filled_cube(seed: int = 0):
    """A simulated ADI cube whose columns < 16 and >= 65 hold no light (zeros, as Level 1 fills
    what the detector does not cover), recentred by sub-pixel Fourier shifts (which make the
    zeros ring)."""
    from hcdc.science import geometry
    from hcdc.science.simulation.adi import simulate_adi_cube

    sim = simulate_adi_cube(
        n_frames=30, size=81, fwhm=4.0, rotation=60.0, companions=[(15.0, 40.0, 5e-3)], seed=seed
    )
    cube = sim.cube.copy()
    cube[:, :, :16] = 0.0
    cube[:, :, 65:] = 0.0
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-0.5, 0.5, (2, cube.shape[0]))
    return sim, geometry.shift_frames(cube, shifts[0], shifts[1]).astype(np.float32)


def test_empty_zones_and_the_valid_detection_area():
    from hcdc.science import geometry
    from hcdc.science.postprocessing.detection import empty_pixels, temporal_std, valid_detection_area

    _, cube = _zero_filled_cube()
    assert np.all(cube[:, :, :16] != 0)  # no exact zeros left: found by their noise
    empty = empty_pixels(temporal_std(cube))
    # Next to the data the ringing is stronger: the last 4-5 columns are partly taken for data.
    assert empty[:, :11].all() and empty[:, 72:].all()
    assert not empty[:, 15:65].any()
    # Rings of apertures (diameter 1 FWHM, plus 1 px) that reach an empty pixel are not valid:
    # the closest are 25-26 px from the star, every pixel of column 10 (30 px) is empty.
    valid = valid_detection_area(empty, 4.0)
    r = geometry.distance_map(valid.shape)
    assert valid[r < 25 - 3 - 0.5].all()
    assert not valid[(r > 30 - 3 + 0.5) & (r < 40)].any()
    # Isolated low-noise pixels (interpolated bad pixels) are data.
    std = temporal_std(_zero_filled_cube()[0].cube)
    std[30, 30] = std[50, 52] = 0.0
    assert not empty_pixels(std).any()
    with pytest.raises(ValueError, match="frames, y, x"):
        temporal_std(cube[0])


def test_detections_stay_where_every_frame_has_data():
    from hcdc.science.postprocessing.run import postprocess

    sim, cube = _zero_filled_cube()
    result = postprocess(cube, sim.angles, algorithm="cadi", fwhm=4.0, compute_contrast=False)
    # Without the valid area, the rings crossing the zero-filled columns have too little noise and
    # give a false detection near the edge.
    unrestricted = detect_candidates(result.snr_map, 4.0, image=result.image)
    assert any(c.separation > 25 for c in unrestricted)
    (det,) = result.detections
    truth = sim.companions[0]
    assert np.hypot(det.x - truth.x, det.y - truth.y) < 0.5
    restricted = detect_candidates(
        result.snr_map, 4.0, image=result.image, valid=np.zeros_like(cube[0], bool)
    )
    assert restricted == []


def test_adi_side_lobes_of_a_bright_companion_are_not_candidates():
    from hcdc.science.postprocessing.pca import pca_annular
    from hcdc.science.simulation.adi import simulate_adi_cube

    fwhm = 4.0
    sim = simulate_adi_cube(
        n_frames=40,
        size=81,
        fwhm=fwhm,
        rotation=30.0,
        companions=[(18.0, 50.0, 3e-2), (30.0, 200.0, 1e-2)],
        speckle_decorrelation=0.05,
        seed=0,
    )
    image = pca_annular(sim.cube, sim.angles, fwhm=fwhm, ncomp=2)
    snr_image = snr.snr_map(image, fwhm)
    # Beyond the negative self-subtraction lobes, positive lobes (~20 % of the companion, ~2 FWHM
    # along the arc) pass the S/N threshold ...
    unrestricted = detect_candidates(snr_image, fwhm, image=image)
    assert len(unrestricted) == 3
    # ... and go away once the field rotation is known.
    found = detect_candidates(snr_image, fwhm, image=image, rotation=float(np.ptp(sim.angles)))
    assert len(found) == 2
    for c, truth in zip(found, sim.companions, strict=True):
        assert np.hypot(c.x - truth.x, c.y - truth.y) < 0.4


def test_s_n_peaks_without_positive_flux_are_not_candidates():
    rng = np.random.default_rng(3)
    fwhm = 4.0
    image = rng.normal(size=(81, 81))
    image[10:25, 48:63] -= 60 * gaussian_psf(fwhm, size=15)  # a hole centred on (55, 17)
    fake_snr = np.zeros_like(image)
    fake_snr[17, 55] = 50.0  # a (mis)computed S/N peak there
    assert detect_candidates(fake_snr, fwhm) != []  # the S/N map alone
    assert detect_candidates(fake_snr, fwhm, image=image) == []


#: A 9 x 9 box (float32 values, centred on pixel (64, 44) of an 89 x 89 image) of the PCA-ADI
#: image of a fake that measured an astrometric error in the CLI rerun test: scipy 1.17.1's
#: MINPACK with least_squares' default x_scale='jac' fitted it two ways (x ~64.7946 px, the two
#: ~1e-11 px apart, 1 call in ~60 after other allocations; in a full run often enough that a
#: product's rerun differed in DETECTIONS).
_RERUN_BOX = np.array(
    """
    -0.045871288 0.6627461 -0.2695407 -1.1164038 -1.4537513 -1.4110914 -1.7122002 -0.60941815 0.9129136
    0.72781867 0.33824843 -0.75989807 -1.3942682 -2.094427 -2.0772767 -1.2500026 -0.65237737 -0.03826122
    0.62933165 -0.11946523 -0.8149061 -1.2055287 -1.1383816 -0.46197474 -0.37134087 0.27619615 -0.43317193
    -0.44116163 -0.260234 -0.438752 1.3260779 1.3042531 1.9451444 2.3572161 0.13340297 -0.3357388
    -0.4533652 -0.16790195 0.23957515 1.8641225 3.9360976 3.9101791 3.4766588 1.0068374 -0.8872557
    -0.6622214 -0.28065675 0.090998426 1.3130763 2.0372648 2.31052 1.688041 0.3595117 -0.76688296
    -0.15364544 -0.36323038 -0.2568277 -0.70909405 -1.9877552 -1.1288615 -0.9648002 0.25637686 -0.34382468
    0.48603645 0.12742108 -0.06466393 -1.1439986 -2.266655 -2.2932367 -0.5965349 -0.417291 -0.11730582
    0.30241227 0.5420965 0.38136965 -0.36250257 -1.5136724 -1.7117137 -0.96036625 -0.863727 -0.033524968
    """.split(),
    dtype=np.float32,
).reshape(9, 9)


@pytest.mark.parametrize("scoped", [False, True])
def test_gaussian_fit_gives_the_same_result_on_every_call(scoped):
    """The same box gives the same fit whatever the heap held before (reruns compare DETECTIONS
    bit for bit) with x_scale=1.0 (MINPACK diag = 1), given to the call or set for a block by
    gaussian_fit_x_scale (what l2-postprocess 1.4 does). Without it this test failed in 5 runs of
    5 (scipy 1.17.1)."""
    image = np.zeros((49, 69))
    image[40:49, 60:69] = _RERUN_BOX
    rng = np.random.default_rng(0)
    results = set()
    with gaussian_fit_x_scale(1.0 if scoped else None):
        for _ in range(200):
            junk = [rng.standard_normal(int(n)) * 1e3 for n in rng.integers(1, 400, 50)]  # dirty the heap
            del junk
            kwargs = {} if scoped else {"x_scale": 1.0}
            fit = fit_gaussian_2d(image.copy(), 64, 44, box=9, fwhm=3.385740552131023, **kwargs)
            results.add((fit.x, fit.y, fit.amplitude))
    assert len(results) == 1, f"{len(results)} different fits of the same box"


def test_gaussian_fit_x_scale_scope_ends_with_its_block(monkeypatch):
    """Outside gaussian_fit_x_scale the fit is scipy's default one (earlier recipe versions, Level 1
    recentring): the same call as least_squares without x_scale."""
    from scipy import optimize

    image = np.zeros((49, 69))
    image[40:49, 60:69] = _RERUN_BOX
    calls = []
    real = optimize.least_squares

    def spy(*args, **kwargs):
        calls.append(kwargs.get("x_scale", "default"))
        return real(*args, **kwargs)

    monkeypatch.setattr(optimize, "least_squares", spy)  # records, then runs the real fit
    fit_gaussian_2d(image, 64, 44, box=9, fwhm=3.4)
    with gaussian_fit_x_scale(1.0):
        fit_gaussian_2d(image, 64, 44, box=9, fwhm=3.4)
        with gaussian_fit_x_scale(None):
            fit_gaussian_2d(image, 64, 44, box=9, fwhm=3.4)
    fit_gaussian_2d(image, 64, 44, box=9, fwhm=3.4)
    assert calls == ["default", 1.0, "default", "default"]


def test_a_candidate_next_to_the_star_keeps_a_position_where_its_ring_can_be_measured() -> None:
    """An S/N peak just outside the star's masked core, next to a bright residual of the star:
    refining it to the image's brightest maximum would move it onto the star (no ring of noise
    apertures there), and photometry then failed with "only 1 background aperture(s)"
    (``postprocess`` at a low threshold). The candidate keeps its S/N-peak pixel instead."""
    from hcdc.science.postprocessing.detection import detect_candidates
    from hcdc.science.postprocessing.snr import snr_at

    fwhm, n = 4.0, 41
    yy, xx = np.mgrid[:n, :n]
    c = n // 2
    image = 100.0 * np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * (fwhm / 2.355) ** 2))  # the star's leak
    snr_map = np.zeros((n, n))
    snr_map[c, c + 5] = 12.0  # 5 px = fwhm/2 + 3: inside the S/N map's region
    candidates = detect_candidates(snr_map, fwhm, threshold=3.0, image=image)
    assert len(candidates) == 1
    (cand,) = candidates
    snr_at(image, cand.x, cand.y, fwhm)  # raised ValueError when the candidate sat on the star
    assert (cand.x, cand.y) == (float(c + 5), float(c))
    assert cand.separation == pytest.approx(5.0)
