"""Statistics of a speckle field in an ADI cube: what makes a sequence hard or easy for ADI.

Pure functions (arrays in, numbers out) used to compare simulated sequences with real ones
(``docs/simulation.md``, ``benchmarks/speckle_statistics.py``):

* :func:`speckle_correlation`: Pearson correlation of the speckle pattern between frames ``k``
  and ``k + lag`` in annuli, averaged over ``k``. In each frame and annulus the annulus mean is
  removed (the smooth halo), so the number measures how much of the *pattern* is shared between
  the two frames (1: identical, 0: independent). Photon and read noise lower it at every lag.
* :func:`radial_noise_profile`: the standard deviation, around the annulus, of 1-FWHM-diameter
  aperture sums, divided by the star's aperture flux: the 1-sigma contrast of a point source
  in one image (no throughput correction). Applied to a single frame it measures the raw
  speckle level; applied to an ADI-processed image it measures what ADI leaves.

Conventions: the star is on :func:`hcdc.science.geometry.frame_center`; separations in pixels;
frames are given in time order (the lag is counted in frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hcdc.science import geometry

__all__ = [
    "SequenceStatistics",
    "SpeckleCorrelation",
    "aperture_kernel",
    "radial_noise_profile",
    "sequence_statistics",
    "speckle_correlation",
]


@dataclass(frozen=True)
class SpeckleCorrelation:
    """Correlation of the speckle pattern versus lag (frames) and separation (px).

    ``correlation[i, j]``: mean Pearson correlation, in the annulus centred on ``radii[i]``,
    between frames ``k`` and ``k + lags[j]`` (mean over all ``k``). ``n_pixels[i]``: pixels in
    annulus ``i``.
    """

    radii: np.ndarray
    lags: np.ndarray
    correlation: np.ndarray
    n_pixels: np.ndarray

    def at_lag_fraction(self, fraction: float) -> np.ndarray:
        """Correlation per radius at the lag closest to ``fraction`` of the sequence length."""
        n_frames = int(self.lags.max()) + 1 if self.lags.size else 1
        j = int(np.argmin(np.abs(self.lags - fraction * (n_frames - 1))))
        return self.correlation[:, j]


def _annulus(shape: tuple[int, ...], radius: float, width: float, mask: np.ndarray | None) -> np.ndarray:
    r = geometry.distance_map(shape)
    sel = np.abs(r - radius) <= width / 2.0
    if mask is not None:
        sel &= ~mask
    return sel


def speckle_correlation(
    cube: np.ndarray,
    radii: Sequence[float] | np.ndarray,
    width: float,
    *,
    lags: Sequence[int] | np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> SpeckleCorrelation:
    """Frame-to-frame correlation of the speckle pattern versus lag, in annuli of ``width`` px.

    ``cube``: (frames, y, x) in time order, star on the frame centre, any companion removed or
    masked (a companion turns with the sky and lowers the correlation). ``radii``: annulus centres
    (px). ``lags``: frame lags (default ``0 .. frames - 1``). ``mask`` (bool (y, x)): pixels to
    leave out (True = excluded). Non-finite pixels are left out of every frame.
    """
    cube = np.asarray(cube, dtype=np.float64)
    if cube.ndim != 3 or cube.shape[0] < 2:
        raise ValueError(f"need a (frames, y, x) cube with at least 2 frames; got shape {cube.shape}")
    if width <= 0:
        raise ValueError(f"annulus width must be positive; got {width}")
    n_frames = cube.shape[0]
    lag_arr = np.arange(n_frames) if lags is None else np.asarray(lags, dtype=int)
    if lag_arr.size == 0 or lag_arr.min() < 0 or lag_arr.max() >= n_frames:
        raise ValueError(f"lags must lie in 0..{n_frames - 1}; got {lag_arr.tolist()}")
    finite = np.all(np.isfinite(cube), axis=0)
    bad = ~finite if mask is None else (mask | ~finite)
    radii_arr = np.asarray(radii, dtype=np.float64)
    corr = np.full((radii_arr.size, lag_arr.size), np.nan)
    npix = np.zeros(radii_arr.size, dtype=int)
    for i, radius in enumerate(radii_arr):
        sel = _annulus(cube.shape, float(radius), width, bad)
        npix[i] = int(sel.sum())
        if npix[i] < 3:
            continue
        values = cube[:, sel]
        values = values - values.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.einsum("kp,kp->k", values, values))
        norm[norm == 0] = np.nan
        unit = values / norm[:, None]
        gram = unit @ unit.T
        for j, lag in enumerate(lag_arr):
            corr[i, j] = float(np.nanmean(np.diagonal(gram, offset=int(lag))))
    return SpeckleCorrelation(radii=radii_arr, lags=lag_arr, correlation=corr, n_pixels=npix)


def aperture_kernel(fwhm: float) -> np.ndarray:
    """Binary disc of diameter ``fwhm`` px (odd square): convolving with it gives aperture sums."""
    if fwhm <= 0:
        raise ValueError(f"fwhm must be positive; got {fwhm}")
    half = int(np.ceil(fwhm / 2.0))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    return (np.hypot(xx, yy) <= fwhm / 2.0).astype(np.float64)


def radial_noise_profile(
    image: np.ndarray,
    radii: Sequence[float] | np.ndarray,
    fwhm: float,
    star_flux: float,
    *,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """1-sigma point-source contrast per annulus: std of 1-FWHM aperture sums / star aperture flux.

    ``image``: 2-D (star on the frame centre; a single frame or a processed ADI image) or a cube
    (frames, y, x), then the median over frames of the per-frame profiles is returned.
    ``radii``: separations (px); each annulus is 1 FWHM wide. ``star_flux``: the star's flux in a
    1-FWHM-diameter aperture, in the image's units. ``mask`` (bool (y, x), True = excluded):
    pixels (e.g. a companion) to leave out. The azimuthal mean of the aperture sums (in 1-px
    rings) is removed first, so a radial trend does not count as noise. Apertures overlap, so
    this is the pixel-level standard deviation of the aperture-smoothed image, not the
    small-sample noise of Mawet et al. (2014): it is meant for comparing images, not for detection thresholds.
    """
    arr = np.asarray(image, dtype=np.float64)
    if star_flux <= 0:
        raise ValueError(f"star_flux must be positive; got {star_flux}")
    if arr.ndim == 3:
        return np.median(
            np.stack([radial_noise_profile(f, radii, fwhm, star_flux, mask=mask) for f in arr]), axis=0
        )
    if arr.ndim != 2:
        raise ValueError(f"need an image or a (frames, y, x) cube; got shape {arr.shape}")
    finite = np.isfinite(arr)
    smoothed = ndimage.convolve(np.where(finite, arr, 0.0), aperture_kernel(fwhm), mode="constant")
    bad = ~finite if mask is None else (mask | ~finite)
    # An aperture touching an excluded pixel is excluded too.
    bad = ndimage.binary_dilation(bad, structure=aperture_kernel(fwhm).astype(bool))
    # Remove the azimuthal mean in 1-px rings first: a radial trend (halo, ADI's negative bowl)
    # is not noise at a given separation (S/N and contrast curves compare apertures at one radius).
    r = geometry.distance_map(arr.shape)
    ring = np.rint(r).astype(int)
    good = ~bad
    sums = np.bincount(ring[good], weights=smoothed[good], minlength=ring.max() + 1)
    counts = np.bincount(ring[good], weights=r[good], minlength=ring.max() + 1)
    n = np.bincount(ring[good], minlength=ring.max() + 1)
    filled = n > 0
    # Ring means at the rings' mean radii, interpolated linearly at every pixel's radius.
    profile = np.interp(r, counts[filled] / n[filled], sums[filled] / n[filled])
    smoothed = smoothed - profile
    out = np.full(np.size(radii), np.nan)
    for i, radius in enumerate(np.asarray(radii, dtype=np.float64)):
        sel = _annulus(arr.shape, float(radius), fwhm, bad)
        if sel.sum() >= 3:
            out[i] = float(smoothed[sel].std(ddof=1)) / star_flux
    return out


@dataclass(frozen=True)
class SequenceStatistics:
    """What ADI sees in a sequence, at separations ``radii_ld`` (lambda/D).

    ``lags``: frame lags, and ``correlation`` (radii, lags) the speckle-pattern correlation at them;
    ``raw_profile``: 1-sigma contrast of one frame (median over frames); ``cadi_profile`` /
    ``pca_profile``: 1-sigma contrast of the cADI and full-frame PCA images (no throughput
    correction); ``snr_cadi`` / ``snr_pca``: mean Mawet S/N of fake companions injected at each
    separation (``fake_contrast``) and found by cADI and by PCA; ``snr_ratio`` = cADI / PCA.
    """

    radii_ld: np.ndarray
    lags: np.ndarray
    correlation: np.ndarray
    raw_profile: np.ndarray
    cadi_profile: np.ndarray
    pca_profile: np.ndarray
    fake_contrast: np.ndarray
    snr_cadi: np.ndarray
    snr_pca: np.ndarray
    ncomp: int

    @property
    def snr_ratio(self) -> np.ndarray:
        return self.snr_cadi / self.snr_pca

    def to_dict(self) -> dict[str, list]:
        """JSON-ready copy (lists of floats)."""
        out: dict[str, list] = {}
        for name in (
            "radii_ld",
            "lags",
            "correlation",
            "raw_profile",
            "cadi_profile",
            "pca_profile",
            "fake_contrast",
            "snr_cadi",
            "snr_pca",
            "snr_ratio",
        ):
            out[name] = np.asarray(getattr(self, name)).tolist()
        return out


def sequence_statistics(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    star_flux: float,
    lod_px: float,
    radii_ld: Sequence[float] = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0),
    lag_fractions: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 0.75),
    ncomp: int = 10,
    fake_snr: float = 8.0,
    n_pa: int = 12,
    final_mask: np.ndarray | None = None,
) -> SequenceStatistics:
    """Measure :class:`SequenceStatistics` on a companion-free ADI cube (star on the frame centre).

    ``angles``: derotation angles (:func:`hcdc.science.geometry.derotate` convention); ``psf``:
    off-axis PSF with unit 1-FWHM-aperture flux; ``star_flux``: star aperture flux (cube units);
    ``lod_px``: lambda/D in pixels (separations are compared in lambda/D between instruments).
    ``lag_fractions``: lags as fractions of the sequence (0.0 means one frame). Fakes: at each
    separation, ``n_pa`` position angles (one cube per angle, all separations in it on a spiral),
    contrast ``fake_snr`` times the PCA image's 1-sigma contrast there, so PCA finds them at
    S/N ~ ``fake_snr`` whatever the noise level. ``final_mask`` (bool (y, x), True = excluded):
    sky-fixed pixels of the final (derotated) images to leave out of the noise profiles, e.g. a
    debris disk, which is signal for ADI, not speckle noise.
    """
    # Imported here: the post-processing package imports the simulation helpers in its tests.
    from hcdc.science.postprocessing import adi, pca, snr
    from hcdc.science.postprocessing.fakes import inject_companions

    cube = np.asarray(cube, dtype=np.float32)
    angles = np.asarray(angles, dtype=np.float64).ravel()
    n = cube.shape[0]
    radii_px = np.asarray(radii_ld, dtype=np.float64) * lod_px
    lags = np.array(sorted({max(1, int(round(f * (n - 1)))) for f in lag_fractions}))
    corr = speckle_correlation(cube, radii_px, fwhm, lags=lags)
    raw = radial_noise_profile(cube, radii_px, fwhm, star_flux)
    img_cadi = adi.cadi(cube, angles, fwhm=fwhm)
    img_pca = pca.pca(cube, angles, fwhm=fwhm, ncomp=ncomp)
    prof_cadi = radial_noise_profile(img_cadi, radii_px, fwhm, star_flux, mask=final_mask)
    prof_pca = radial_noise_profile(img_pca, radii_px, fwhm, star_flux, mask=final_mask)
    contrast = fake_snr * prof_pca
    s_cadi = np.zeros((n_pa, radii_px.size))
    s_pca = np.zeros((n_pa, radii_px.size))
    for j in range(n_pa):
        # A spiral: neighbouring separations are 360/len apart in PA, so fakes do not overlap.
        pas = (360.0 * j / n_pa + 137.5 * np.arange(radii_px.size)) % 360.0
        faked = inject_companions(cube, angles, psf, radii_px, pas, contrast * star_flux)
        images = (adi.cadi(faked, angles, fwhm=fwhm), pca.pca(faked, angles, fwhm=fwhm, ncomp=ncomp))
        for i, (r, p) in enumerate(zip(radii_px, pas, strict=True)):
            x, y = geometry.polar_to_pixel(float(r), float(p), cube.shape)
            s_cadi[j, i] = snr.snr_at(images[0], x, y, fwhm).snr
            s_pca[j, i] = snr.snr_at(images[1], x, y, fwhm).snr
    return SequenceStatistics(
        radii_ld=np.asarray(radii_ld, dtype=np.float64),
        lags=lags,
        correlation=corr.correlation,
        raw_profile=raw,
        cadi_profile=prof_cadi,
        pca_profile=prof_pca,
        fake_contrast=contrast,
        snr_cadi=s_cadi.mean(axis=0),
        snr_pca=s_pca.mean(axis=0),
        ncomp=int(ncomp),
    )
