"""Spectral cross-talk of a lenslet integral-field spectrograph: a forward model and its correction.

On the SPHERE IFS detector some of the light of every micro-spectrum lands on the neighbouring
micro-spectra (Antichi et al. 2009, ApJ 695, 1042 for the BIGRE lenslet design; Mesa et al. 2015,
A&A 576, A121, Sect. 3, for the laboratory data and its correction). Mesa et al. describe two
components, which this module models as one convolution kernel ``K`` (all in detector pixels):

* **small scale**: the wings of each lenslet's image, a few pixels to ~20 px, with the profile of
  the correction routine of D. Mesa as vlt-sphere applies it (``sph_ifs_correct_spectral_xtalk``,
  ../shared/reference/sphere.md section (e)): ``k(r) = a / (1 + (r / b)^3)`` with
  ``b = 0.727986 / 1.8`` px, on a 41 x 41 px box, the inner 3 x 3 px set to zero (that light is the
  spectrum's own core). With ``a = 1`` (vlt-sphere's normalisation) the box holds 0.2205 of the
  pixel's light;
* **large scale**: diffuse light spread over tens of pixels, a normalised Gaussian of
  ``sigma_large_px`` carrying a fraction ``large_fraction`` of the light.

The model conserves flux: the light in the wings is taken from the core,
``observed = (1 - f) I + I * K`` with ``f = sum(K)`` (``*`` = convolution). vlt-sphere's
correction subtracts ``observed * K_small`` once (a first-order inverse of the non-conserving form
``I + I * K``); :func:`correct_crosstalk` inverts the model exactly instead, by division in
Fourier space by ``H = (1 - f) + FT(K)``: ``|FT(K)| <= f``, so ``|H| >= 1 - 2 f`` > 0 for
``f < 1/2`` and the inversion is stable (it amplifies white noise by at most ``1 / (1 - 2 f)``).

Both directions pad the image with zeros by the kernel's reach: light that leaks off the detector
is lost, and light from beyond its edges is taken as zero (the IFS detector's lenslet field ends
inside its unlit border). Images in any linear unit (ADU, ADU/s); pixel centres on integers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "VLT_SPHERE_XTALK_B_PX",
    "CrosstalkModel",
    "crosstalk_kernel",
    "add_crosstalk",
    "correct_crosstalk",
]

#: Scale ``b`` (px) of the small-scale kernel ``1 / (1 + (r/b)^3)`` of D. Mesa's routine as
#: vlt-sphere applies it (0.727986 / 1.8; sphere.md (e)).
VLT_SPHERE_XTALK_B_PX = 0.727986 / 1.8


@dataclass(frozen=True)
class CrosstalkModel:
    """Parameters of the cross-talk kernel (module doc). Lengths in detector pixels.

    ``small_amplitude`` scales the small-scale kernel (1: vlt-sphere's, 0.2205 of the light in
    the 41 x 41 box); ``small_half_size_px`` (20: 41 x 41 box) and ``small_core_half_px`` (1: the
    inner 3 x 3 px are the spectrum's own) bound it. ``large_fraction`` of the light goes into a
    Gaussian halo of ``large_sigma_px``.
    """

    small_amplitude: float = 1.0
    small_b_px: float = VLT_SPHERE_XTALK_B_PX
    small_half_size_px: int = 20
    small_core_half_px: int = 1
    large_fraction: float = 0.0
    large_sigma_px: float = 40.0

    def __post_init__(self) -> None:
        if not (self.small_amplitude >= 0.0 and self.large_fraction >= 0.0):
            raise ValueError("cross-talk amplitudes must be >= 0")
        if not (self.small_b_px > 0.0 and self.large_sigma_px > 0.0):
            raise ValueError("cross-talk scales must be > 0")
        if self.small_half_size_px < 1 or not 0 <= self.small_core_half_px < self.small_half_size_px:
            raise ValueError("cross-talk box: need 0 <= core half-size < half-size")
        if self.leaked_fraction >= 0.5:
            raise ValueError(
                f"cross-talk leaks {self.leaked_fraction:.3f} of the light: the inversion needs < 0.5"
            )

    @property
    def pad_px(self) -> int:
        """Reach of the kernel (px): the zero padding of the convolutions."""
        reach = self.small_half_size_px
        if self.large_fraction > 0.0:
            reach = max(reach, int(math.ceil(4.0 * self.large_sigma_px)))
        return reach

    def small_kernel(self) -> np.ndarray:
        """The small-scale kernel, ``(2 h + 1, 2 h + 1)``, centred, inner core zeroed."""
        h = self.small_half_size_px
        y, x = np.mgrid[-h : h + 1, -h : h + 1]
        r = np.hypot(x, y)
        k = self.small_amplitude / (1.0 + (r / self.small_b_px) ** 3)
        c = self.small_core_half_px
        k[(np.abs(x) <= c) & (np.abs(y) <= c)] = 0.0
        return k

    @property
    def small_fraction(self) -> float:
        """Fraction of a pixel's light that the small-scale component moves out of its core."""
        return float(self.small_kernel().sum())

    @property
    def leaked_fraction(self) -> float:
        """``f``: the fraction of the light in the wings (both components)."""
        return self.small_fraction + self.large_fraction

    def to_dict(self) -> dict[str, float]:
        return {
            "small_amplitude": self.small_amplitude,
            "small_b_px": self.small_b_px,
            "small_half_size_px": self.small_half_size_px,
            "small_core_half_px": self.small_core_half_px,
            "large_fraction": self.large_fraction,
            "large_sigma_px": self.large_sigma_px,
            "leaked_fraction": self.leaked_fraction,
        }


def crosstalk_kernel(model: CrosstalkModel, shape: tuple[int, int]) -> np.ndarray:
    """The wing kernel ``K`` (both components, core excluded) on a periodic grid of ``shape``,
    its centre on pixel (0, 0) (the layout of an FFT convolution). Sums to ``f``."""
    ny, nx = shape
    h = model.small_half_size_px
    if ny <= 2 * h or nx <= 2 * h:
        raise ValueError(f"grid {shape} smaller than the cross-talk kernel ({2 * h + 1} px)")
    kernel = np.zeros(shape)
    small = model.small_kernel()
    iy = np.arange(-h, h + 1) % ny
    ix = np.arange(-h, h + 1) % nx
    kernel[np.ix_(iy, ix)] += small
    if model.large_fraction > 0.0:
        dy = np.minimum(np.arange(ny), ny - np.arange(ny)).astype(np.float64)
        dx = np.minimum(np.arange(nx), nx - np.arange(nx)).astype(np.float64)
        gy = np.exp(-0.5 * (dy / model.large_sigma_px) ** 2)
        gx = np.exp(-0.5 * (dx / model.large_sigma_px) ** 2)
        gauss = np.outer(gy, gx)
        kernel += model.large_fraction * gauss / gauss.sum()
    return kernel


@functools.lru_cache(maxsize=8)
def _transfer(model: CrosstalkModel, padded_shape: tuple[int, int]) -> np.ndarray:
    """``H = (1 - f) + FT(K)`` on the padded grid (real FFT layout)."""
    kernel = crosstalk_kernel(model, padded_shape)
    return (1.0 - float(kernel.sum())) + np.fft.rfft2(kernel)


def _apply(image: np.ndarray, model: CrosstalkModel, inverse: bool) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"cross-talk works on 2-D frames; got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise ValueError("cross-talk: the frame has non-finite pixels (interpolate bad pixels first)")
    ny, nx = img.shape
    p = model.pad_px
    shape = (_fft_size(ny + 2 * p), _fft_size(nx + 2 * p))
    padded = np.zeros(shape)
    padded[:ny, :nx] = img  # zero padding after the image: the periodic wrap lands on zeros
    h = _transfer(model, shape)
    spectrum = np.fft.rfft2(padded)
    spectrum = spectrum / h if inverse else spectrum * h
    return np.fft.irfft2(spectrum, s=shape)[:ny, :nx]


def _fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT sizes)."""
    best = 1 << (n - 1).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def add_crosstalk(image: np.ndarray, model: CrosstalkModel) -> np.ndarray:
    """The frame as the detector sees it: ``(1 - f) image + image * K`` (module doc)."""
    return _apply(image, model, inverse=False)


def correct_crosstalk(image: np.ndarray, model: CrosstalkModel) -> np.ndarray:
    """Remove the cross-talk of ``model`` from a background-subtracted, flat-fielded frame whose
    bad pixels are already interpolated: the exact inverse of :func:`add_crosstalk` (division by
    ``H`` in Fourier space, module doc). ~0.3 s for a 2048^2 frame."""
    return _apply(image, model, inverse=True)
