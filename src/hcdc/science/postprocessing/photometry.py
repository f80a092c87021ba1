"""Exact circular-aperture photometry, vectorised over many apertures.

A pixel ``(j, i)`` (row ``j``, column ``i``) is the unit square ``[i-0.5, i+0.5] x [j-0.5, j+0.5]``
(pixel centres on integers, as in photutils and VIP). An aperture sum is the sum of pixel values
weighted by the exact area of overlap between the disk and each pixel (photutils
``method='exact'``), computed here in closed form for thousands of apertures at once.

The area of a disk of radius ``R`` centred on the origin below-left of a corner ``(x, y)``,
``G(x, y) = area(disk ∩ {X < x, Y < y})``, has a closed form; the overlap with any pixel is
then ``G(x1, y1) - G(x0, y1) - G(x1, y0) + G(x0, y0)`` (inclusion-exclusion over its corners).
"""

from __future__ import annotations

import numpy as np

#: most measurements of a detection's photometry with fakes at its flux estimate
#: (:func:`hcdc.science.postprocessing.detection_photometry.measure_detections`, ``l2-postprocess``
#: 1.6; the DETECTIONS card ``PHOTFMAX``)
FAKE_FLUX_ITERATIONS = 4

__all__ = ["disk_quadrant_area", "aperture_weights", "aperture_sums", "gaussian_psf", "normalize_psf"]

#: Gaussian sigma per FWHM
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _chord_primitive(u: np.ndarray, radius: float) -> np.ndarray:
    """Primitive of the half-chord ``sqrt(R^2 - u^2)`` for ``u`` in ``[-R, R]``."""
    r2 = radius * radius
    return 0.5 * (u * np.sqrt(np.maximum(r2 - u * u, 0.0)) + r2 * np.arcsin(np.clip(u / radius, -1.0, 1.0)))


def disk_quadrant_area(x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Area of the disk of ``radius`` centred on the origin with ``X < x`` and ``Y < y`` (exact).

    ``x`` and ``y`` broadcast against each other; the transcendental functions are evaluated on
    ``x`` and ``y`` separately (a grid of corners costs one ``arcsin`` per row and per column).
    With ``h(X) = sqrt(R^2 - X^2)`` and ``s = h(y)``: for ``|X| < s`` the chord below ``Y = y`` has
    length ``y + h(X)``; for ``|X| > s`` it is ``2 h(X)`` if ``y >= 0`` and 0 otherwise.
    """
    x = np.clip(np.asarray(x, dtype=np.float64), -radius, radius)
    y = np.clip(np.asarray(y, dtype=np.float64), -radius, radius)
    s = np.sqrt(np.maximum(radius * radius - y * y, 0.0))
    hs = _chord_primitive(s, radius)  # H(s); H is odd so H(-s) = -hs
    hx = _chord_primitive(x, radius)
    quarter = 0.25 * np.pi * radius * radius  # -H(-R)
    left = x <= -s
    right = x >= s
    xc = np.clip(x, -s, s)
    h_xc = np.where(left, -hs, np.where(right, hs, hx))
    area = y * (xc + s) + h_xc + hs
    outer = 2.0 * (np.where(left, hx, -hs) + quarter + np.where(right, hx, hs) - hs)
    return area + np.where(y >= 0, outer, 0.0)


def aperture_weights(
    x: np.ndarray, y: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact pixel weights of circular apertures centred on ``(x, y)`` (pixel coordinates).

    Returns ``(x0, y0, weights)``: for aperture ``m`` the weights ``weights[m]`` (shape
    ``(2K+1, 2K+1)``) apply to the pixel block whose lower-left pixel is ``(y0[m], x0[m])``;
    ``K = floor(radius + 1)`` so that every pixel touched by the disk is inside the block.
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if radius <= 0:
        raise ValueError(f"aperture radius must be positive; got {radius}")
    k = int(np.floor(radius + 1.0))
    x0 = np.rint(x).astype(np.intp) - k
    y0 = np.rint(y).astype(np.intp) - k
    edges = np.arange(2 * k + 2, dtype=np.float64) - 0.5  # pixel edges relative to x0 / y0
    ex = (x0 - x)[:, None] + edges[None, :]  # (M, 2K+2) corner x relative to the aperture centre
    ey = (y0 - y)[:, None] + edges[None, :]
    weights = np.empty((x.size, 2 * k + 1, 2 * k + 1), dtype=np.float64)
    chunk = 2048  # keeps the (chunk, 2K+2, 2K+2) temporaries in cache
    for start in range(0, x.size, chunk):
        sl = slice(start, start + chunk)
        g = disk_quadrant_area(ex[sl, None, :], ey[sl, :, None], radius)  # (m, ny_corners, nx_corners)
        weights[sl] = g[:, 1:, 1:] - g[:, :-1, 1:] - g[:, 1:, :-1] + g[:, :-1, :-1]
    return x0, y0, weights


def aperture_sums(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Exact sums of ``image`` in circular apertures of ``radius`` px at ``(x, y)``.

    Pixels outside the image count as 0 (as photutils does); NaN pixels count as 0.
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    x0, y0, weights = aperture_weights(x, y, radius)
    size = weights.shape[-1]
    pad = size + 1
    padded = np.pad(image, pad)
    rows = (y0 + pad)[:, None] + np.arange(size)[None, :]
    cols = (x0 + pad)[:, None] + np.arange(size)[None, :]
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= padded.shape[0] or cols.max() >= padded.shape[1]:
        raise ValueError("aperture centre lies more than one aperture size outside the image")
    patches = padded[rows[:, :, None], cols[:, None, :]]
    return np.einsum("mij,mij->m", patches, weights)


def gaussian_psf(fwhm: float, size: int | None = None, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Pixel-integrated circular Gaussian of ``fwhm`` px on an odd ``size`` grid, unit aperture flux.

    ``(dx, dy)`` shifts its centre from the central pixel (pixels). Normalised to unit flux in a
    1-FWHM-diameter aperture centred on the Gaussian centre.
    """
    if fwhm <= 0:
        raise ValueError(f"fwhm must be positive; got {fwhm}")
    if size is None:
        size = int(2 * np.ceil(2.5 * fwhm) + 1)
    if size % 2 == 0:
        raise ValueError(f"PSF size must be odd; got {size}")
    from scipy.special import erf

    sigma = fwhm * _FWHM_TO_SIGMA
    edges = np.arange(size + 1) - size // 2 - 0.5
    cdf_x = 0.5 * (1 + erf((edges - dx) / (np.sqrt(2) * sigma)))
    cdf_y = 0.5 * (1 + erf((edges - dy) / (np.sqrt(2) * sigma)))
    psf = np.outer(np.diff(cdf_y), np.diff(cdf_x))
    c = size // 2
    flux = aperture_sums(psf, np.array([c + dx]), np.array([c + dy]), fwhm / 2.0)[0]
    return (psf / flux).astype(np.float32)


def normalize_psf(psf: np.ndarray, fwhm: float, size: int | None = None) -> np.ndarray:
    """Crop ``psf`` around its centre pixel to ``size`` (odd) and scale it to unit flux in a
    1-FWHM-diameter aperture (VIP's ``normalize_psf`` convention; contrasts are then aperture-flux
    ratios with a star flux measured in the same aperture)."""
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2:
        raise ValueError(f"PSF must be a 2-D image; got shape {psf.shape}")
    if size is not None:
        if size % 2 == 0 or size > min(psf.shape):
            raise ValueError(f"PSF crop size must be odd and at most {min(psf.shape)}; got {size}")
        cy, cx = psf.shape[0] // 2, psf.shape[1] // 2
        h = size // 2
        psf = psf[cy - h : cy + h + 1, cx - h : cx + h + 1]
    cy, cx = psf.shape[0] // 2, psf.shape[1] // 2
    flux = aperture_sums(psf, np.array([cx]), np.array([cy]), fwhm / 2.0)[0]
    if not flux > 0:
        raise ValueError("PSF has no positive flux in a 1-FWHM aperture at its centre")
    return (psf / flux).astype(np.float32)
