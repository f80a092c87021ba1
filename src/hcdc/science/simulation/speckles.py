"""An evolving speckle field: static, slowly drifting and fast parts of the residual starlight.

Real coronagraphic speckles are not a fixed set of spots whose fluxes breathe by a few percent
(the first IRDIS model, :class:`hcdc.science.simulation.irdis.SpeckleModel`): the whole pattern
decorrelates, quickly at first and then slowly (Milli et al. 2016; on the NACO beta Pic cube the
pattern correlation between frames is 0.9-0.97 at one frame of lag and 0.5-0.8 across the
sequence, see ``docs/simulation.md``). This module models the residual starlight in the
focal plane as a complex amplitude

``E(u, t) = sqrt(w_s) S(u) + sqrt(w_q) sum_k a_k(t) Q_k(u) / sqrt(K) + sqrt(w_f) F_t(u)``

and the speckle intensity as ``h(|u|) |E(u, t)|^2``, where

* ``u`` is the position relative to the star in lambda/D (so the pattern scales with wavelength:
  two DBI fields see the same speckles magnified by lambda2/lambda1);
* ``S``, ``Q_k``, ``F_t`` are unit-variance complex Gaussian fields with the coherence of a
  speckle (the Fourier transform of white pupil-plane noise on a circular pupil: Airy-amplitude
  correlation), ``S`` fixed (the static aberrations), ``Q_k`` fixed, ``F_t`` drawn afresh for
  every exposure time ``t`` (the residual that does not survive one exposure: AO residual,
  fast seeing changes);
* ``a_k(t)`` are unit-variance complex random processes whose autocorrelation is
  ``exp(-|dt| / tau)`` (random-phase Fourier synthesis with Lorentzian frequencies, so they are
  deterministic functions of ``t`` for a seed, independent of the order of evaluation);
* ``h(r)`` is the mean speckle intensity (fraction of the star's core flux per (lambda/D)^2), a
  log-log interpolation through ``envelope_r_ld``/``envelope_level``, zero inside the
  coronagraph's inner radius taper and beyond the AO control radius.

Added incoherently to ``|E|^2``: a low-order field ``|L(u, t)|^2`` (share ``w_l`` of the mean
intensity, ``L`` a sum of a few fields of the same kind drawn from a *smaller* pupil disc, so its
blobs are several lambda/D wide, with coefficients of their own time scale): slowly varying
low-order aberrations of the halo, which classical ADI leaves and PCA removes (without it cADI
kept 2-4 times less on the model than on the NACO cube).

All fields are tabulated on a grid of ``step_ld`` lambda/D and interpolated (bilinearly) at the
detector pixels; the fast part is regenerated per exposure from a generator seeded by
``(seed, round(t * 1000))``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "NACO_LIKE_ENVELOPE",
    "NACO_LIKE_LOW_ORDER",
    "NACO_LIKE_SHARES",
    "NACO_LIKE_WITH_LOW_ORDER",
    "EvolvingSpeckles",
    "make_evolving_speckles",
    "speckle_intensity",
    "speckle_intensity_at",
]

#: Mean speckle intensity (fraction of the star's core flux per (lambda/D)^2) versus separation
#: (lambda/D), tuned so that the 1-sigma raw-frame contrast of a simulated sequence matches the
#: real NACO L' beta Pic cube within a factor 1.5 (``benchmarks/speckle_statistics.py``).
NACO_LIKE_ENVELOPE: tuple[tuple[float, ...], tuple[float, ...]] = (
    (1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0),
    (7.0e-3, 5.0e-3, 1.3e-3, 6.8e-4, 3.5e-4, 2.8e-4, 1.9e-4, 1.6e-4, 6.8e-5, 4.0e-5, 2.5e-5),
)
#: ``(r_ld, static share, fast share)``: the fast, exposure-to-exposure part grows outwards
#: (AO residuals dominate far from the star); tuned on the NACO correlation versus lag.
NACO_LIKE_SHARES: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] = (
    (3.0, 4.0, 5.0, 8.0, 10.0),
    (0.8, 0.8, 0.55, 0.55, 0.6),
    (0.02, 0.01, 0.01, 0.05, 0.05),
)
#: ``(share, pupil radius (cycles per lambda/D), e-folding time (s), modes)`` of the low-order
#: field (none by default: the night simulator's Level 1 tests are tuned without it).
NACO_LIKE_LOW_ORDER: tuple[float, float, float, int] = (0.0, 0.129, 4000.0, 2)
#: Keyword arguments of :func:`make_evolving_speckles` for the model *with* a low-order field,
#: which matches the NACO cube's cADI residuals much better (``docs/simulation.md``): 38 % of the
#: light in blobs ~4 lambda/D wide evolving over 4,000 s, the envelope 1.53 times brighter and the
#: static share 1.03 times larger than the defaults.
NACO_LIKE_WITH_LOW_ORDER: dict = {
    "envelope": (
        NACO_LIKE_ENVELOPE[0],
        (1.1e-02, 7.7e-03, 2.0e-03, 1.0e-03, 5.4e-04, 4.3e-04, 2.9e-04, 2.4e-04, 1.0e-04, 6.1e-05, 3.8e-05),
    ),
    "shares": (NACO_LIKE_SHARES[0], (0.82, 0.82, 0.57, 0.57, 0.62), NACO_LIKE_SHARES[2]),
    "low_order_share": 0.38,
    "low_order_pupil": 0.129,
    "low_order_timescale_s": 4000.0,
    "low_order_modes": 2,
}


@dataclass(frozen=True, eq=False)  # hashed by identity: amplitudes are cached per (field, time)
class EvolvingSpeckles:
    """A seeded evolving speckle field (see the module docstring for the model).

    ``static``/``quasi``: complex fields (n, n) and (K, n, n) on the lambda/D grid (centre at
    index n // 2, step ``step_ld``); ``frequencies``/``phases`` (K, M): angular frequencies
    (rad/s) and phases of the random Fourier synthesis of ``a_k(t)``; ``static_share`` /
    ``fast_share`` at radii ``share_r_ld`` (lambda/D, linear interpolation, constant beyond the
    ends): shares ``w_s`` and ``w_f`` of the mean intensity, the quasi-static share being
    ``w_q = 1 - w_s - w_f``; ``envelope_r_ld`` /
    ``envelope_level``: the mean intensity profile ``h``; ``inner_ld``: radius (lambda/D) of the
    coronagraphic inner taper; ``control_ld``: AO control radius (lambda/D), beyond which ``h``
    falls to zero over 1 lambda/D; ``seed``: seeds the fast part; ``brightness_rms``,
    ``brightness_frequencies``/``brightness_phases`` (M,): the whole pattern's brightness is
    multiplied by ``exp(rms g(t) - rms^2 / 2)`` (mean 1), ``g`` a unit-variance real process of
    the same kind as ``a_k`` (seeing and Strehl changes scale all speckles together).
    """

    static: np.ndarray
    quasi: np.ndarray
    frequencies: np.ndarray
    phases: np.ndarray
    share_r_ld: np.ndarray
    static_share: np.ndarray
    fast_share: np.ndarray
    step_ld: float
    envelope_r_ld: np.ndarray
    envelope_level: np.ndarray
    inner_ld: float
    control_ld: float
    seed: int
    brightness_rms: float = 0.0
    brightness_frequencies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    brightness_phases: np.ndarray = field(default_factory=lambda: np.zeros(0))
    low_order: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), complex))
    low_order_share: float = 0.0
    low_order_frequencies: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    low_order_phases: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def grid_size(self) -> int:
        return int(self.static.shape[-1])

    def coefficients(self, time_s: float) -> np.ndarray:
        """Complex ``a_k(t)`` (K,) at ``time_s`` seconds: unit variance, ``exp(-|dt|/tau)`` memory."""
        return _random_process(self.frequencies, self.phases, time_s)

    def brightness(self, time_s: float) -> float:
        """Common brightness factor of the pattern at ``time_s`` (log-normal, mean 1)."""
        m = self.brightness_frequencies.size
        if m == 0 or self.brightness_rms == 0.0:
            return 1.0
        g = np.sqrt(2.0 / m) * np.cos(self.brightness_frequencies * time_s + self.brightness_phases).sum()
        return float(np.exp(self.brightness_rms * g - 0.5 * self.brightness_rms**2))

    def envelope(self, r_ld: np.ndarray) -> np.ndarray:
        """Mean speckle intensity ``h(r)`` (fraction of core flux per (lambda/D)^2) at ``r_ld``."""
        r = np.maximum(np.asarray(r_ld, dtype=np.float64), 1e-3)
        logh = np.interp(np.log(r), np.log(self.envelope_r_ld), np.log(self.envelope_level))
        inner = 1.0 - np.exp(-((r / self.inner_ld) ** 4))
        outer = 0.5 * (1.0 - np.tanh((r - self.control_ld) / 0.5))
        return np.exp(logh) * inner * outer

    def shares(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(static, quasi-static, fast) intensity shares on the lambda/D grid, (n, n) each."""
        n = self.grid_size
        u = (np.arange(n) - n // 2) * self.step_ld
        r = np.hypot(u[None, :], u[:, None])
        w_s = np.interp(r, self.share_r_ld, self.static_share)
        w_f = np.interp(r, self.share_r_ld, self.fast_share)
        return w_s, 1.0 - w_s - w_f, w_f

    def amplitude(self, time_s: float) -> np.ndarray:
        """Complex amplitudes (2, n, n) on the lambda/D grid: the speckle field ``E(u, t)`` and the
        low-order field ``L(u, t)``, mutually incoherent (intensity ``|E|^2 + |L|^2``, unit mean)."""
        out = np.zeros((2, self.grid_size, self.grid_size), dtype=complex)
        scale = np.sqrt(self.brightness(time_s))
        out[0] = self._speckle_amplitude(time_s) * (np.sqrt(1.0 - self.low_order_share) * scale)
        k = self.low_order.shape[0]
        if k and self.low_order_share > 0.0:
            coeffs = _random_process(self.low_order_frequencies, self.low_order_phases, time_s)
            out[1] = np.tensordot(coeffs, self.low_order, axes=1) * (
                np.sqrt(self.low_order_share / k) * scale
            )
        return out

    def _speckle_amplitude(self, time_s: float) -> np.ndarray:
        """``E(u, t)`` (n, n) before the brightness and low-order scalings, unit mean intensity."""
        w_s, w_q, w_f = self.shares()
        k = self.quasi.shape[0]
        field_ = np.sqrt(w_s) * self.static
        if k:
            field_ = field_ + np.sqrt(w_q / k) * np.tensordot(self.coefficients(time_s), self.quasi, axes=1)
        rng = np.random.default_rng([self.seed, int(round(time_s * 1000.0)) & 0x7FFFFFFFFFFF])
        return field_ + np.sqrt(w_f) * _coherent_field(rng, self.grid_size, self.step_ld)


def _random_process(frequencies: np.ndarray, phases: np.ndarray, time_s: float) -> np.ndarray:
    """Unit-variance complex processes (K,) at ``time_s``: random-phase sums of ``M`` frequencies."""
    m = frequencies.shape[1]
    return np.exp(1j * (frequencies * time_s + phases)).sum(axis=1) / np.sqrt(m)


def _lorentzian_synthesis(
    rng: np.random.Generator, count: int, n_frequencies: int, timescale_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Angular frequencies and phases (count, M) of processes with correlation ``exp(-|dt|/tau)``.

    Lorentzian (Cauchy) angular frequencies give E[cos(omega dt)] = exp(-|dt| / tau). They are
    stratified (one per quantile bin of the Cauchy law, jittered in its bin) so that even a few
    of them reproduce that correlation closely in every realisation.
    """
    quantiles = (
        np.arange(n_frequencies)[None, :] + rng.uniform(0.0, 1.0, (count, n_frequencies))
    ) / n_frequencies
    frequencies = np.tan(np.pi * (quantiles - 0.5)) / timescale_s
    return frequencies, rng.uniform(0.0, 2.0 * np.pi, (count, n_frequencies))


def _coherent_field(
    rng: np.random.Generator, n: int, step_ld: float, count: int | None = None, pupil_radius: float = 0.5
) -> np.ndarray:
    """Unit-variance complex Gaussian field(s) with the coherence of speckles (circular pupil).

    White complex noise on the pupil disc (frequencies up to ``pupil_radius`` cycle per lambda/D;
    0.5 is the pupil of diameter D, smaller values give proportionally larger blobs: the
    low-order, large-scale part), Fourier transformed to the focal plane sampled at ``step_ld``.
    """
    freq = np.fft.fftfreq(n, d=step_ld)  # cycles per lambda/D
    pupil = np.hypot(freq[None, :], freq[:, None]) <= pupil_radius
    shape = (n, n) if count is None else (count, n, n)
    noise = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * pupil
    out = np.fft.fftshift(np.fft.ifft2(noise), axes=(-2, -1))
    # E|noise|^2 = 2 per pupil pixel; ifft2 divides by n^2: variance 2 * npupil / n^4.
    return out * (n**2 / np.sqrt(2.0 * pupil.sum()))


def make_evolving_speckles(
    rng: np.random.Generator,
    *,
    shares: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] = NACO_LIKE_SHARES,
    timescale_s: float = 12000.0,
    brightness_rms: float = 0.1,
    brightness_timescale_s: float = 1000.0,
    n_modes: int = 2,
    n_frequencies: int = 32,
    step_ld: float = 0.2,
    extent_ld: float = 25.6,
    envelope: tuple[tuple[float, ...], tuple[float, ...]] = NACO_LIKE_ENVELOPE,
    inner_ld: float = 1.6,
    control_ld: float = 20.0,
    low_order_share: float = NACO_LIKE_LOW_ORDER[0],
    low_order_pupil: float = NACO_LIKE_LOW_ORDER[1],
    low_order_timescale_s: float = NACO_LIKE_LOW_ORDER[2],
    low_order_modes: int = NACO_LIKE_LOW_ORDER[3],
) -> EvolvingSpeckles:
    """Draw an evolving speckle field.

    ``shares``: ``(r_ld, static, fast)`` anchor points of the static and fast shares of the mean
    speckle intensity (the rest is quasi-static);
    ``timescale_s``: e-folding time of the quasi-static part's correlation (``tau``);
    ``brightness_rms``, ``brightness_timescale_s``: rms (log) and e-folding time of the common
    brightness changes;
    ``n_modes`` (K), ``n_frequencies`` (M): size of the quasi-static synthesis; ``step_ld``,
    ``extent_ld``: grid step and half-width (lambda/D); ``envelope``: ``(r_ld, level)`` anchor
    points of the mean intensity; ``inner_ld``, ``control_ld``: inner taper and control radius;
    ``low_order_share``: share of the mean intensity in the low-order field (large blobs from
    pupil frequencies up to ``low_order_pupil`` cycle per lambda/D, ``low_order_modes`` modes
    evolving with e-folding time ``low_order_timescale_s``).
    Defaults reproduce the NACO beta Pic statistics (``docs/simulation.md``).
    """
    r_sh, w_s, w_f = (np.asarray(a, dtype=np.float64) for a in shares)
    if not (r_sh.shape == w_s.shape == w_f.shape) or np.any(np.diff(r_sh) <= 0):
        raise ValueError("shares need increasing radii and one static and one fast share per radius")
    if np.any(w_s < 0) or np.any(w_f < 0) or np.any(w_s + w_f > 1.0):
        raise ValueError(f"static and fast shares must be >= 0 with a sum <= 1; got {shares}")
    if timescale_s <= 0 or low_order_timescale_s <= 0:
        raise ValueError(f"timescales must be positive; got {timescale_s}, {low_order_timescale_s}")
    if not 0.0 <= low_order_share < 1.0 or not 0.0 < low_order_pupil <= 0.5:
        raise ValueError(
            f"low_order_share must lie in [0, 1) and low_order_pupil in (0, 0.5]; "
            f"got {low_order_share}, {low_order_pupil}"
        )
    r_env, level = (np.asarray(a, dtype=np.float64) for a in envelope)
    if r_env.shape != level.shape or r_env.size < 2 or np.any(np.diff(r_env) <= 0) or np.any(level <= 0):
        raise ValueError("envelope needs >= 2 increasing radii and positive levels of the same length")
    n = int(2 * round(extent_ld / step_ld))
    static = _coherent_field(rng, n, step_ld)
    quasi = _coherent_field(rng, n, step_ld, count=n_modes) if n_modes else np.zeros((0, n, n), complex)
    frequencies, phases = _lorentzian_synthesis(rng, n_modes, n_frequencies, timescale_s)
    b_quantiles = (np.arange(n_frequencies) + rng.uniform(0.0, 1.0, n_frequencies)) / n_frequencies
    b_frequencies = np.tan(np.pi * (b_quantiles - 0.5)) / brightness_timescale_s
    b_phases = rng.uniform(0.0, 2.0 * np.pi, n_frequencies)
    seed = int(rng.integers(0, 2**31))
    # Drawn after everything above, so that the other fields do not depend on the low-order part.
    low_order = _coherent_field(rng, n, step_ld, count=low_order_modes, pupil_radius=low_order_pupil)
    lo_frequencies, lo_phases = _lorentzian_synthesis(
        rng, low_order_modes, n_frequencies, low_order_timescale_s
    )
    return EvolvingSpeckles(
        static=static,
        quasi=quasi,
        frequencies=frequencies,
        phases=phases,
        share_r_ld=r_sh,
        static_share=w_s,
        fast_share=w_f,
        step_ld=float(step_ld),
        envelope_r_ld=r_env,
        envelope_level=level,
        inner_ld=float(inner_ld),
        control_ld=float(control_ld),
        seed=seed,
        brightness_rms=float(brightness_rms),
        brightness_frequencies=b_frequencies,
        brightness_phases=b_phases,
        low_order=low_order,
        low_order_share=float(low_order_share),
        low_order_frequencies=lo_frequencies,
        low_order_phases=lo_phases,
    )


def speckle_intensity(
    speckles: EvolvingSpeckles,
    shape: tuple[int, int],
    star_xy: tuple[float, float],
    lod_px: np.ndarray | float,
    time_s: float,
) -> np.ndarray:
    """Speckle image (fraction of the star's core flux per pixel) at ``time_s``.

    ``lod_px``: lambda/D in pixels, one value or several (sub-wavelengths of a band, averaged:
    the pattern is magnified with lambda, which smears it radially in broad bands). The same
    ``time_s`` gives the same amplitude, so the two fields of one exposure share their speckles.
    """
    amplitude = _cached_amplitude(speckles, float(time_s))
    c = speckles.grid_size // 2
    lods = np.atleast_1d(np.asarray(lod_px, dtype=np.float64))
    out = np.zeros(shape)
    # Only the box around the star that can hold speckles is computed (full frames are 1024 px).
    reach = float(lods.max()) * min(speckles.control_ld + 2.0, c * speckles.step_ld - 1.0) + 1.0
    ny, nx = shape
    y0, y1 = max(int(star_xy[1] - reach), 0), min(int(star_xy[1] + reach) + 2, ny)
    x0, x1 = max(int(star_xy[0] - reach), 0), min(int(star_xy[0] + reach) + 2, nx)
    if y0 >= y1 or x0 >= x1:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx - star_xy[0], yy - star_xy[1]
    box = out[y0:y1, x0:x1]
    for lod in lods:
        ux, uy = dx / lod, dy / lod
        r = np.hypot(ux, uy)
        inside = r < min(speckles.control_ld + 2.0, c * speckles.step_ld - 1.0)
        coords = np.array([c + uy[inside] / speckles.step_ld, c + ux[inside] / speckles.step_ld])
        intensity = np.zeros(coords.shape[1])
        for part in amplitude[: 2 if speckles.low_order_share > 0.0 else 1]:  # incoherent sum
            intensity += ndimage.map_coordinates(part.real, coords, order=1, mode="nearest") ** 2
            intensity += ndimage.map_coordinates(part.imag, coords, order=1, mode="nearest") ** 2
        # Intensity per (lambda/D)^2 -> per pixel: divide by lod^2.
        box[inside] += speckles.envelope(r[inside]) * intensity / lod**2
    return out / lods.size


@functools.lru_cache(maxsize=4)
def _cached_amplitude(speckles: EvolvingSpeckles, time_s: float) -> np.ndarray:
    """``speckles.amplitude(time_s)``, cached: the two IRDIS fields of one DIT share it."""
    amplitude = speckles.amplitude(time_s)
    amplitude.flags.writeable = False
    return amplitude


def speckle_intensity_at(
    speckles: EvolvingSpeckles, ux: np.ndarray, uy: np.ndarray, time_s: float
) -> np.ndarray:
    """Speckle intensity (fraction of the star's core flux per (lambda/D)^2) at points.

    ``ux``, ``uy``: offsets from the star in lambda/D (any shape). The point-sampled
    counterpart of :func:`speckle_intensity`, for detectors that do not sample the focal plane
    on a pixel grid (the IFS lenslets); zero beyond the tabulated field.
    """
    amplitude = _cached_amplitude(speckles, float(time_s))
    c = speckles.grid_size // 2
    ux, uy = np.asarray(ux, dtype=np.float64), np.asarray(uy, dtype=np.float64)
    r = np.hypot(ux, uy)
    out = np.zeros(r.shape)
    inside = r < min(speckles.control_ld + 2.0, c * speckles.step_ld - 1.0)
    coords = np.array([c + uy[inside] / speckles.step_ld, c + ux[inside] / speckles.step_ld])
    intensity = np.zeros(coords.shape[1])
    for part in amplitude[: 2 if speckles.low_order_share > 0.0 else 1]:  # incoherent sum
        intensity += ndimage.map_coordinates(part.real, coords, order=1, mode="nearest") ** 2
        intensity += ndimage.map_coordinates(part.imag, coords, order=1, mode="nearest") ** 2
    out[inside] = speckles.envelope(r[inside]) * intensity
    return out
