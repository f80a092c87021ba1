"""Algorithmic throughput from fake-companion injection, cached and reused.

The throughput at separation ``r`` is the fraction of a fake companion's aperture flux that
survives post-processing: ``(aperture flux of [image(cube + fake) - image(cube)]) / (aperture flux
of the injected PSF)``, measured in a 1-FWHM-diameter aperture at the fake's position and set to
0 where negative (as VIP's ``throughput``). Fakes are injected ``fc_rad_sep`` FWHM apart along
``nbranch`` branches, in ``fc_rad_sep`` passes that together sample every FWHM in separation,
with a flux of ``fc_snr`` times the aperture noise at their separation.

Runs of the algorithm are cached (keyed by the algorithm, its parameters and digests of the cube,
angles and PSF), so S/N maps, throughput-corrected images and contrast curves of the same
reduction reuse one another's work instead of recomputing.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from hcdc.science import geometry
from hcdc.science.postprocessing.base import get_algorithm, is_memory_mapped
from hcdc.science.postprocessing.fakes import InjectedCube, add_stamps, inject_companions, shifted_psfs
from hcdc.science.postprocessing.pca import TILED_ELEMENTS
from hcdc.science.postprocessing.photometry import aperture_sums, aperture_weights

__all__ = [
    "ThroughputCurve",
    "array_digest",
    "default_separations",
    "throughput_corrected_flux",
    "run_algorithm",
    "noise_per_annulus",
    "throughput_curve",
    "clear_cache",
    "aperture_footprint",
]

_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_ITEMS = 32


def clear_cache() -> None:
    """Forget every cached algorithm run and throughput curve."""
    _CACHE.clear()


def _remember(key: tuple, value: object) -> object:
    _CACHE[key] = value
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_ITEMS:
        _CACHE.popitem(last=False)
    return value


def array_digest(array: np.ndarray) -> str:
    """Content digest (BLAKE2b, 128 bit) of an array's shape, dtype and bytes."""
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.shape}{array.dtype.str}".encode())
    h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=lambda v: np.asarray(v).tolist())


def run_algorithm(
    algorithm: str, cube: np.ndarray, angles: np.ndarray, *, fwhm: float, cache: bool = True, **params
) -> np.ndarray:
    """Final image of a registered ADI ``algorithm`` on ``cube`` (cached on content + parameters)."""
    spec = get_algorithm(algorithm)
    if spec.spectral or spec.needs_reference and "reference" not in params:
        raise ValueError(
            f"algorithm {algorithm!r} needs {'a spectral cube' if spec.spectral else 'a reference'}; "
            "run it directly"
        )
    key = (
        "image",
        algorithm,
        _params_key(params),
        array_digest(cube),
        array_digest(np.asarray(angles)),
        float(fwhm),
    )
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]  # type: ignore[return-value]
    image = np.asarray(spec.function(cube, angles, fwhm=fwhm, **params))
    if image.ndim != 2:
        raise ValueError(
            f"algorithm {algorithm!r} returned shape {image.shape}; throughput needs one image "
            "(give a single ncomp)"
        )
    image.setflags(write=False)
    return _remember(key, image) if cache else image  # type: ignore[return-value]


def _fake_map(
    shape: tuple[int, int], psf: np.ndarray, xs: np.ndarray, ys: np.ndarray, fluxes: np.ndarray
) -> np.ndarray:
    """An image holding only fakes ``fluxes x psf`` at ``(xs, ys)`` (sub-pixel, Fourier-shifted)."""
    ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
    stamps = shifted_psfs(np.asarray(psf, dtype=np.float64), xs - ix, ys - iy) * fluxes[:, None, None]
    # Added one by one into one image (not a (fakes, y, x) stack: 350 MB for a 1024^2 frame);
    # the same additions in the same order as summing the stack over its first axis.
    image = np.zeros((1, *shape), dtype=np.float64)
    for k in range(xs.size):
        add_stamps(image, stamps[k : k + 1], ix[k : k + 1], iy[k : k + 1], 1.0)
    return image[0]


def aperture_footprint(shape: tuple[int, int], xs: np.ndarray, ys: np.ndarray, radius: float) -> np.ndarray:
    """Boolean (y, x) mask of every pixel :func:`aperture_sums` reads for apertures at ``(xs, ys)``."""
    x0, y0, weights = aperture_weights(xs, ys, radius)
    size = weights.shape[-1]
    mask = np.zeros(shape, dtype=bool)
    for xa, ya in zip(x0, y0, strict=True):
        mask[max(ya, 0) : max(ya + size, 0), max(xa, 0) : max(xa + size, 0)] = True
    return mask


def default_separations(shape: tuple[int, ...], fwhm: float, step: float) -> np.ndarray:
    """Separations (px) every ``step`` px from 1 FWHM to 2 px inside the frame edge."""
    n = min(shape[-2], shape[-1])
    return np.arange(fwhm, n // 2 - 2, step)


def noise_per_annulus(
    image: np.ndarray, fwhm: float, radii: np.ndarray, pa_start: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviation (ddof=0) and mean of 1-FWHM aperture sums around each circle of ``radii`` px.

    Apertures are spaced by 1 FWHM along the circle (``floor(2 pi r / fwhm)`` of them), starting at
    position angle ``pa_start`` (VIP ``noise_per_annulus``).
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    if radii.size == 0:
        return np.empty(0), np.empty(0)
    counts = (2 * np.pi * radii / fwhm).astype(int)
    if counts.min() < 2:
        r = radii[np.argmin(counts)]
        raise ValueError(f"separation {r:.2f} px is too small for apertures of {fwhm} px")
    # Every aperture of every circle in one vectorised aperture-sum call (positions as
    # geometry.polar_to_pixel), then the statistics per circle.
    which = np.repeat(np.arange(radii.size), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pa = np.radians(pa_start + 360.0 * k / counts[which])
    cy, cx = geometry.frame_center(image.shape)
    xs = cx - radii[which] * np.sin(pa)
    ys = cy + radii[which] * np.cos(pa)
    fluxes = aperture_sums(image, xs, ys, fwhm / 2.0)
    groups = np.split(fluxes, np.cumsum(counts)[:-1])
    std = np.array([g.std() for g in groups])
    mean = np.array([g.mean() for g in groups])
    return std, mean


@dataclass(frozen=True)
class ThroughputCurve:
    """Throughput (0..1) measured at ``separations`` px, per branch, and its branch mean."""

    separations: np.ndarray  # (n,) px
    branches: np.ndarray  # (nbranch, n)
    branch_pas: np.ndarray  # (nbranch,) deg
    fake_fluxes: np.ndarray  # (n,) aperture flux injected

    @property
    def throughput(self) -> np.ndarray:
        """Mean over branches at each separation."""
        return self.branches.mean(axis=0)

    def at(self, separation: np.ndarray | float) -> np.ndarray:
        """Throughput interpolated linearly at ``separation`` px (end values held outside the range)."""
        return np.interp(separation, self.separations, self.throughput)

    def map(self, shape: tuple[int, ...]) -> np.ndarray:
        """2-D throughput map (each pixel gets the throughput at its separation; NaN outside the range)."""
        r = geometry.distance_map(shape)
        out = self.at(r)
        out[(r < self.separations[0]) | (r > self.separations[-1])] = np.nan
        return out

    def correct(self, image: np.ndarray, floor: float = 0.05) -> np.ndarray:
        """``image`` divided by the throughput at each pixel's separation (NaN where below ``floor``)."""
        t = self.map(image.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t >= floor, image / t, np.nan)


def throughput_curve(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    algorithm: str = "pca",
    params: dict | None = None,
    separations: Sequence[float] | None = None,
    nbranch: int = 1,
    pa: float = 270.0,
    fc_snr: float = 100.0,
    fc_rad_sep: int = 3,
    fake_flux: float | None = None,
    cache: bool = True,
) -> ThroughputCurve:
    """Throughput of ``algorithm`` (with ``params``) on ``cube`` from injected fake companions.

    ``psf``: odd square, unit flux in a 1-FWHM aperture. ``separations`` (px): default every FWHM
    from 1 FWHM to 2 px inside the frame edge (:func:`default_separations`); fakes of one pass are
    ``fc_rad_sep`` samples apart, so with the default sampling they never overlap. (VIP 2.1.1's
    ``contrast_curve`` samples every pixel: its fakes are 3 px apart, overlap, and the brighter
    total absorbed by PCA lowers the throughput; ``separations=default_separations(shape, fwhm,
    1.0)`` reproduces it.) Branch ``b`` runs at position angle
    ``pa + 360 b / nbranch`` (the default 270 deg is VIP's ``theta=0``, the +x axis). Each fake's
    flux is ``fc_snr`` x the aperture noise of the fake-free image at its separation, or
    ``fake_flux`` (aperture flux) when given: PCA-like algorithms absorb bright sources more, so
    to correct a companion's photometry use fakes as bright as the companion.
    Results are cached; the cube should be free of real companions near the branches.
    """
    params = dict(params or {})
    # A memory-mapped cube stays mapped (tiled PCA reads it piece by piece); others as float32.
    cube = np.asarray(cube) if is_memory_mapped(cube) else np.asarray(cube, dtype=np.float32)
    lazy = algorithm == "pca" and (is_memory_mapped(cube) or cube.size > TILED_ELEMENTS)
    angles = np.asarray(angles, dtype=np.float64)
    if fc_rad_sep < 1 or nbranch < 1:
        raise ValueError("fc_rad_sep and nbranch must be >= 1")
    if separations is None:
        separations = default_separations(cube.shape, fwhm, fwhm)
    seps = np.asarray(separations, dtype=np.float64)
    if seps.size == 0 or np.any(seps <= fwhm / 2.0):
        raise ValueError(f"separations must be non-empty and larger than fwhm/2 = {fwhm / 2} px")
    key = (
        "throughput",
        algorithm,
        _params_key(params),
        array_digest(cube),
        array_digest(angles),
        array_digest(np.asarray(psf, dtype=np.float32)),
        float(fwhm),
        seps.tobytes(),
        nbranch,
        float(pa),
        float(fc_snr),
        fc_rad_sep,
        None if fake_flux is None else float(fake_flux),
    )
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]  # type: ignore[return-value]
    image_nofc = run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=cache, **params)
    if fake_flux is None:
        noise, _ = noise_per_annulus(image_nofc, fwhm, seps)
        fluxes = fc_snr * noise
    else:
        if not fake_flux > 0:
            raise ValueError(f"fake_flux must be positive; got {fake_flux}")
        fluxes = np.full(seps.size, float(fake_flux))
    branch_pas = (pa + 360.0 * np.arange(nbranch) / nbranch) % 360.0
    spec = get_algorithm(algorithm)
    result = np.zeros((nbranch, seps.size))
    for b, bpa in enumerate(branch_pas):
        for start in range(fc_rad_sep):
            idx = np.arange(start, seps.size, fc_rad_sep)
            if idx.size == 0:
                continue
            # Large cubes: the fakes are added as the tiled PCA reads the cube (no full copy).
            inject = InjectedCube if lazy else inject_companions
            cube_fc = inject(cube, angles, psf, seps[idx], bpa, fluxes[idx])
            xs, ys = (
                np.array(v)
                for v in zip(*(geometry.polar_to_pixel(s, bpa, cube.shape) for s in seps[idx]), strict=True)
            )
            extra = {}
            if spec.supports_output_mask:
                # Only the pixels under the measuring apertures are read: skip the others.
                extra["output_mask"] = aperture_footprint(cube.shape[-2:], xs, ys, fwhm / 2.0)
            image_fc = np.asarray(spec.function(cube_fc, angles, fwhm=fwhm, **params, **extra))
            recovered = aperture_sums(image_fc - image_nofc, xs, ys, fwhm / 2.0)
            # Injected flux measured on a map of this pass's fakes (neighbours included when fakes
            # are close enough to overlap, as VIP does), so that recovered/injected is consistent.
            del cube_fc  # a full copy, or a large cube's fake stamps: free before the next pass
            injected = aperture_sums(_fake_map(cube.shape[-2:], psf, xs, ys, fluxes[idx]), xs, ys, fwhm / 2.0)
            result[b, idx] = np.maximum(recovered / injected, 0.0)
    curve = ThroughputCurve(seps, result, branch_pas, fluxes)
    return _remember(key, curve) if cache else curve  # type: ignore[return-value]


def throughput_corrected_flux(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    x: float,
    y: float,
    algorithm: str = "pca",
    params: dict | None = None,
    nbranch: int = 4,
    rtol: float = 0.01,
    throughput_cube: np.ndarray | None = None,
    cache: bool = True,
) -> tuple[float, float]:
    """Aperture flux of the source at ``(x, y)`` of the final image, corrected for throughput.

    PCA-like algorithms absorb a larger fraction of brighter sources, so the throughput depends on
    the flux being measured. This solves ``f * T(f) = F_obs`` for ``f``, where ``F_obs`` is the
    1-FWHM aperture flux at ``(x, y)`` and ``T(f)`` the throughput of fakes of flux ``f`` at the
    same separation on ``nbranch`` branches starting half a branch step from the source.
    ``throughput_cube``: the cube to inject fakes into, ideally free of the source (e.g. after a
    NEGFC removal) because a second source in the same annulus is absorbed differently; default
    ``cube``. Returns ``(flux, throughput)``. Raises ``ValueError`` if the observed flux is not
    positive.
    """
    params = dict(params or {})
    image = run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=cache, **params)
    observed = float(aperture_sums(image, np.array([x]), np.array([y]), fwhm / 2.0)[0])
    if not observed > 0:
        raise ValueError(f"no positive flux at ({x:.2f}, {y:.2f}) of the {algorithm} image")
    separation, pa_source = geometry.pixel_to_polar(x, y, image.shape)
    # Branches start half a step away from the source so that no fake lands on it.
    pa0 = pa_source + 180.0 / nbranch

    def measured(log_flux: float) -> float:
        tp = throughput_curve(
            cube if throughput_cube is None else throughput_cube,
            angles,
            psf,
            fwhm=fwhm,
            algorithm=algorithm,
            params=params,
            separations=[separation],
            nbranch=nbranch,
            pa=pa0,
            fake_flux=float(np.exp(log_flux)),
            cache=cache,
        )
        return float(tp.throughput[0])

    def excess(log_flux: float) -> float:
        return np.exp(log_flux) * measured(log_flux) - observed

    lo = hi = np.log(observed)  # f >= F_obs since T <= 1 (up to noise)
    for _ in range(20):
        if excess(hi) >= 0:
            break
        lo, hi = hi, hi + np.log(2.0)
    else:
        raise ValueError("throughput-corrected flux not bracketed after 20 doublings (throughput ~0 here)")
    while excess(lo) > 0 and lo > np.log(observed) - 5.0:
        lo -= np.log(2.0)
    log_flux = brentq(excess, lo, hi, xtol=rtol / 2.0) if lo < hi else hi
    return float(np.exp(log_flux)), measured(log_flux)
