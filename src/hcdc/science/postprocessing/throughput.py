"""Algorithmic throughput from fake-companion injection, cached and reused.

The throughput at separation ``r`` is the fraction of a fake companion's aperture flux that
survives post-processing: ``(aperture flux of [image(cube + fake) - image(cube)]) / (aperture flux
of the injected PSF)``, measured in a 1-FWHM-diameter aperture at the fake's position and set to
0 where negative (as VIP's ``throughput``). Fakes are injected ``fc_rad_sep`` FWHM apart along
``nbranch`` branches, in ``fc_rad_sep`` passes that together sample every FWHM in separation,
with a flux of ``fc_snr`` times the aperture noise at their separation (or given fluxes).

With ``detection=True`` the S/N that hcdc's detection gives each fake is measured too, per unit
injected flux (``ThroughputCurve.snr_per_flux``): the peak, over the pixels within FWHM/2 of the
fake, of the Mawet et al. (2014) S/N whose signal ``f0 - mean(f_i)`` is read on the difference
image (the fake and its own ADI self-subtraction lobes; the background cancels, which keeps the
estimate steady) and whose noise is read on the image with the fake (the lobes raise the noise
of the fake's own ring), each pixel's S/N scaled to the detection threshold at the fake's
separation (the detection compares every pixel with the threshold at its own separation). The
detection thresholds the peak of the S/N map, not its value at the source: on the NACO cube the
peak is ~1 S/N unit above the value at the source at 3 FWHM, and this statistic follows the
peak of the full S/N map within 0.2 S/N units from 3 to 9 FWHM. Contrast curves that mean what
they say are built on it (:mod:`~hcdc.science.postprocessing.contrast`).

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

from hcdc.runtime.blas import SMALL_PROBLEM, map_tasks
from hcdc.science import geometry
from hcdc.science.postprocessing.base import get_algorithm, is_memory_mapped
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, student_threshold
from hcdc.science.postprocessing.fakes import InjectedCube, add_stamps, inject_companions, shifted_psfs
from hcdc.science.postprocessing.pca import TILED_ELEMENTS, clear_statistics
from hcdc.science.postprocessing.photometry import aperture_sums, aperture_weights
from hcdc.science.postprocessing.snr import aperture_positions

__all__ = [
    "ThroughputCurve",
    "array_digest",
    "lazy_injection",
    "default_separations",
    "throughput_corrected_flux",
    "run_algorithm",
    "noise_per_annulus",
    "throughput_curve",
    "clear_cache",
    "aperture_footprint",
    "fake_passes",
    "fake_snr",
    "peak_pixels",
    "ring_snr",
]

_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_ITEMS = 32


def clear_cache() -> None:
    """Forget every cached algorithm run and throughput curve, and the cube statistics full-frame
    PCA keeps for ``incremental_fakes`` (:func:`~hcdc.science.postprocessing.pca.clear_statistics`:
    they hold a reference to their cube)."""
    _CACHE.clear()
    clear_statistics()


def _remember(key: tuple, value: object) -> object:
    _CACHE[key] = value
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_ITEMS:
        _CACHE.popitem(last=False)
    return value


def array_digest(array: np.ndarray) -> str:
    """Content digest (BLAKE2b, 128 bit) of an array's shape, dtype and bytes (of an
    :class:`~hcdc.science.postprocessing.fakes.InjectedCube`: of its base and companions, without
    building it)."""
    if isinstance(array, InjectedCube):  # a cache key that never builds the injected cube
        h = hashlib.blake2b(digest_size=16)
        h.update(b"InjectedCube" + array_digest(array.base).encode())
        for ix, iy, stamps, flux in array.companions:
            for part in (ix, iy, stamps, np.float64(flux)):
                h.update(array_digest(np.asarray(part)).encode())
        return h.hexdigest()
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.shape}{array.dtype.str}".encode())
    h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=lambda v: np.asarray(v).tolist())


def lazy_injection(cube: np.ndarray | InjectedCube, algorithm: str) -> bool:
    """Whether fakes go into ``cube`` as an :class:`~hcdc.science.postprocessing.fakes.InjectedCube`
    (added as the tiled full-frame PCA reads it) rather than a full float32 copy
    (:func:`~hcdc.science.postprocessing.fakes.inject_companions`): for ``'pca'`` on a
    memory-mapped cube or one above :data:`~hcdc.science.postprocessing.pca.TILED_ELEMENTS`
    elements, whose copy PCA would read piece by piece anyway (same values either way)."""
    if algorithm != "pca":
        return False
    if isinstance(cube, InjectedCube):
        return True  # only made for such cubes
    return is_memory_mapped(cube) or np.size(cube) > TILED_ELEMENTS


def run_algorithm(
    algorithm: str,
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    cache: bool = True,
    cube_digest: str | None = None,
    **params,
) -> np.ndarray:
    """Final image of a registered ADI ``algorithm`` on ``cube`` (cached on content + parameters).

    ``cube_digest``: :func:`array_digest` of ``cube`` when the caller has it (hashing a
    memory-mapped cube reads all of it: ~10 s for 9 GB); not computed at all without ``cache``."""
    spec = get_algorithm(algorithm)
    if spec.spectral or spec.needs_reference and "reference" not in params:
        raise ValueError(
            f"algorithm {algorithm!r} needs {'a spectral cube' if spec.spectral else 'a reference'}; "
            "run it directly"
        )
    key: tuple = ()  # only the cache needs it
    if cache:
        key = (
            "image",
            algorithm,
            _params_key(params),
            array_digest(cube) if cube_digest is None else cube_digest,
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


def fake_passes(n_sep: int, branch_pas: np.ndarray, fc_rad_sep: int) -> list[tuple[int, float, np.ndarray]]:
    """``(branch, position angle (deg), separation indices)`` of every pass of a throughput
    measurement: the fakes of one branch ``fc_rad_sep`` samples apart, reduced together; the
    passes of all branches, branch by branch (the order results are gathered in)."""
    return [
        (b, float(bpa), idx)
        for b, bpa in enumerate(branch_pas)
        for start in range(fc_rad_sep)
        if (idx := np.arange(start, n_sep, fc_rad_sep)).size
    ]


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


def peak_pixels(
    x: float, y: float, fwhm: float, shape: tuple[int, ...], radius: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixels ``(xs, ys)`` within ``radius`` px (default FWHM/2) of ``(x, y)``, inside the
    frame, where the Mawet S/N test is defined (more than FWHM/2 + 1 px from the star)."""
    radius = fwhm / 2.0 if radius is None else float(radius)
    h = int(np.ceil(radius))
    yy, xx = np.mgrid[int(round(y)) - h : int(round(y)) + h + 1, int(round(x)) - h : int(round(x)) + h + 1]
    cy, cx = geometry.frame_center(shape)
    keep = (np.hypot(xx - x, yy - y) <= radius) & (np.hypot(xx - cx, yy - cy) > fwhm / 2.0 + 1.0)
    keep &= (xx >= 0) & (yy >= 0) & (xx < shape[-1]) & (yy < shape[-2])
    return xx[keep].astype(np.float64), yy[keep].astype(np.float64)


def _fake_rings(
    x: float, y: float, fwhm: float, shape: tuple[int, ...]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Mawet apertures (first one on the pixel) of every pixel of :func:`peak_pixels`."""
    return [
        aperture_positions(px, py, fwhm, shape)
        for px, py in zip(*peak_pixels(x, y, fwhm, shape), strict=True)
    ]


def ring_snr(
    signal_image: np.ndarray, noise_image: np.ndarray, rings: list[tuple[np.ndarray, np.ndarray]], fwhm: float
) -> np.ndarray:
    """Mawet et al. (2014) S/N of each of ``rings`` (aperture centres, the first one on the test
    position, :func:`hcdc.science.postprocessing.snr.aperture_positions`): signal ``f0 - mean(f_i)``
    of ``signal_image``, noise ``std(f_i, ddof=1) * sqrt(1 + 1/(n-1))`` of ``noise_image`` (the same
    image for the usual S/N). All apertures in one vectorised call; 0 where the noise is 0."""
    if not rings:
        return np.empty(0)
    sizes = np.array([r[0].size for r in rings])
    xs, ys = np.concatenate([r[0] for r in rings]), np.concatenate([r[1] for r in rings])
    noise_sums = aperture_sums(noise_image, xs, ys, fwhm / 2.0)
    signal_sums = (
        noise_sums if signal_image is noise_image else aperture_sums(signal_image, xs, ys, fwhm / 2.0)
    )
    out = np.zeros(len(rings))
    for k, (a, d) in enumerate(
        zip(
            np.split(noise_sums, np.cumsum(sizes)[:-1]),
            np.split(signal_sums, np.cumsum(sizes)[:-1]),
            strict=True,
        )
    ):
        noise = a[1:].std(ddof=1) * np.sqrt(1.0 + 1.0 / (a.size - 1))
        out[k] = (d[0] - d[1:].mean()) / noise if noise > 0 else 0.0
    return out


def _fake_snr(
    image_fc: np.ndarray,
    image_nofc: np.ndarray,
    rings: list[tuple[np.ndarray, np.ndarray]],
    fwhm: float,
    separation: float,
    fpf: float,
) -> float:
    """Peak over ``rings`` (:func:`_fake_rings`) of the S/N with the signal of ``image_fc -
    image_nofc`` and the noise of ``image_fc`` (module docstring), each pixel's S/N scaled by the
    ratio of the detection thresholds at ``separation`` and at the pixel's own separation."""
    values = ring_snr(np.asarray(image_fc) - image_nofc, image_fc, rings, fwhm)
    if values.size == 0:
        return 0.0
    cy, cx = geometry.frame_center(image_fc.shape)
    radii = np.array([np.hypot(r[0][0] - cx, r[1][0] - cy) for r in rings])
    # The detection compares each pixel with the threshold at its own separation, which changes
    # steeply close to the star (Student t with few degrees of freedom).
    scale = student_threshold(separation, fwhm, fpf) / student_threshold(radii, fwhm, fpf)
    return float(max((values * scale).max(), 0.0))


def fake_snr(
    image_fc: np.ndarray,
    image_nofc: np.ndarray,
    x: float,
    y: float,
    fwhm: float,
    separation: float,
    fpf: float,
) -> float:
    """The S/N hcdc's detection gives a fake at ``(x, y)`` (separation ``separation`` px) of the
    final image ``image_fc`` whose fake-free version is ``image_nofc`` (module docstring)."""
    return _fake_snr(image_fc, image_nofc, _fake_rings(x, y, fwhm, image_fc.shape), fwhm, separation, fpf)


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
    snr_per_flux: np.ndarray | None = None  # (nbranch, n) S/N of each fake per injected flux, if measured

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
    fake_flux: float | Sequence[float] | np.ndarray | None = None,
    detection: bool = False,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    cache: bool = True,
    threads: int | None = None,
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
    ``fake_flux`` (aperture flux; one value, or one per separation) when given: PCA-like
    algorithms absorb bright sources more, so to correct a companion's photometry use fakes as
    bright as the companion, and for a detection limit fakes at the limit
    (:func:`hcdc.science.postprocessing.contrast.limit_throughput`).
    ``detection=True`` also measures the S/N hcdc's detection (false-positive fraction ``fpf``)
    gives every fake (module docstring).
    Results are cached; the cube should be free of real companions near the branches.
    The passes (one branch's fakes reduced together) run on up to ``threads`` threads
    (default :func:`hcdc.runtime.blas.task_threads`; cubes below
    :data:`~hcdc.runtime.blas.SMALL_PROBLEM` elements only), with results identical to a
    serial run (:func:`hcdc.runtime.blas.map_tasks`).
    """
    params = dict(params or {})
    # A memory-mapped cube stays mapped (tiled PCA reads it piece by piece); others as float32.
    # A memory-mapped cube, or one whose fakes are added on reading (the plane with the detections
    # removed), stays as it is (tiled PCA reads it piece by piece); others as float32.
    if not (is_memory_mapped(cube) or isinstance(cube, InjectedCube)):
        cube = np.asarray(cube, dtype=np.float32)
    lazy = lazy_injection(cube, algorithm)
    angles = np.asarray(angles, dtype=np.float64)
    if fc_rad_sep < 1 or nbranch < 1:
        raise ValueError("fc_rad_sep and nbranch must be >= 1")
    if separations is None:
        separations = default_separations(cube.shape, fwhm, fwhm)
    seps = np.asarray(separations, dtype=np.float64)
    if seps.size == 0 or np.any(seps <= fwhm / 2.0):
        raise ValueError(f"separations must be non-empty and larger than fwhm/2 = {fwhm / 2} px")
    # The cube's digest reads all of a memory-mapped cube: once per call, and only for the caches.
    digest = array_digest(cube) if cache else None
    key: tuple = ()
    if cache:
        key = (
            "throughput",
            algorithm,
            _params_key(params),
            digest,
            array_digest(angles),
            array_digest(np.asarray(psf, dtype=np.float32)),
            float(fwhm),
            seps.tobytes(),
            nbranch,
            float(pa),
            float(fc_snr),
            fc_rad_sep,
            None if fake_flux is None else np.asarray(fake_flux, dtype=np.float64).tobytes(),
            detection,
            float(fpf),
        )
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]  # type: ignore[return-value]
    image_nofc = run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=cache, cube_digest=digest, **params)
    if fake_flux is None:
        noise, _ = noise_per_annulus(image_nofc, fwhm, seps)
        fluxes = fc_snr * noise
    else:
        given = np.asarray(fake_flux, dtype=np.float64)
        if given.ndim > 1 or given.size not in (1, seps.size):
            raise ValueError(
                f"fake_flux needs one value or one per separation ({seps.size}); got {given.size}"
            )
        if not np.all(given > 0):
            raise ValueError(f"fake_flux must be positive; got {fake_flux}")
        fluxes = np.broadcast_to(given.ravel(), seps.shape).copy()
    branch_pas = (pa + 360.0 * np.arange(nbranch) / nbranch) % 360.0
    spec = get_algorithm(algorithm)
    # One pass = the fakes of one branch ``fc_rad_sep`` samples apart, reduced together. The
    # passes are independent: they run on up to task_threads() threads (map_tasks), each the
    # same operations as in a serial loop. Large or memory-mapped cubes (BLAS on all cores, the
    # tiled PCA's buffers, a fake-injected copy per pass) run one pass at a time.
    passes = fake_passes(seps.size, branch_pas, fc_rad_sep)

    def one_pass(task: tuple[int, float, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        _, bpa, idx = task
        # Large cubes: the fakes are added as the tiled PCA reads the cube (no full copy).
        inject = InjectedCube if lazy else inject_companions
        cube_fc = inject(cube, angles, psf, seps[idx], bpa, fluxes[idx])
        xs, ys = (
            np.array(v)
            for v in zip(*(geometry.polar_to_pixel(s, bpa, cube.shape) for s in seps[idx]), strict=True)
        )
        extra = {}
        if spec.supports_output_mask:
            # Only the pixels under the measuring apertures are read: skip the others (with
            # the S/N, the apertures of the fakes' rings: annuli around them).
            mask = aperture_footprint(cube.shape[-2:], xs, ys, fwhm / 2.0)
            if detection:
                r = geometry.distance_map(cube.shape[-2:])
                for sep in seps[idx]:
                    mask |= np.abs(r - sep) <= fwhm + 1.5
            extra["output_mask"] = mask
        image_fc = np.asarray(spec.function(cube_fc, angles, fwhm=fwhm, **params, **extra))
        recovered = aperture_sums(image_fc - image_nofc, xs, ys, fwhm / 2.0)
        # Injected flux measured on a map of this pass's fakes (neighbours included when fakes
        # are close enough to overlap, as VIP does), so that recovered/injected is consistent.
        del cube_fc  # a full copy, or a large cube's fake stamps: free before the next pass
        injected = aperture_sums(_fake_map(cube.shape[-2:], psf, xs, ys, fluxes[idx]), xs, ys, fwhm / 2.0)
        if not detection:
            return np.maximum(recovered / injected, 0.0), None
        snrs = np.array(
            [
                fake_snr(image_fc, image_nofc, x, y, fwhm, seps[i], fpf) / fluxes[i]
                for x, y, i in zip(xs, ys, idx, strict=True)
            ]
        )
        return np.maximum(recovered / injected, 0.0), snrs

    small = not lazy and cube.size < SMALL_PROBLEM
    result = np.zeros((nbranch, seps.size))
    seen = np.zeros((nbranch, seps.size)) if detection else None  # S/N per injected flux
    for (b, _, idx), (tp, snrs) in zip(
        passes, map_tasks(one_pass, passes, threads if small else 1), strict=True
    ):
        result[b, idx] = tp
        if seen is not None:
            seen[b, idx] = snrs
    curve = ThroughputCurve(seps, result, branch_pas, fluxes, seen)
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
