"""Fake-companion injection into ADI cubes (positive for throughput, negative for NEGFC).

A companion at separation ``r`` px and position angle ``PA`` (deg east of north) on the final
north-up image lies, in frame ``k``, at position angle ``PA + angles[k]`` (``angles`` are the
derotation angles of :func:`hcdc.science.geometry.derotate`). The PSF is shifted to its sub-pixel
position by a Fourier phase ramp (exact for a band-limited PSF), all frames in one batched FFT.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hcdc.science import geometry

__all__ = [
    "add_stamps",
    "companion_positions",
    "shifted_psfs",
    "inject_companions",
    "companion_model_cube",
    "InjectedCube",
]


def companion_positions(
    separation: float, pa: float, angles: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``(x, y)`` of a companion (``separation`` px, ``pa`` deg on the sky) in every frame."""
    cy, cx = geometry.frame_center(shape)
    phi = np.radians(pa + np.asarray(angles, dtype=np.float64))
    return cx - separation * np.sin(phi), cy + separation * np.cos(phi)


def shifted_psfs(psf: np.ndarray, frac_x: np.ndarray, frac_y: np.ndarray) -> np.ndarray:
    """Copies of ``psf`` (odd square, centred on its central pixel) shifted by ``(frac_x, frac_y)`` px.

    Returns (len(frac_x), size, size) float64.
    """
    size = psf.shape[0]
    freq = np.fft.fftfreq(size)
    spectrum = np.fft.fft2(psf)
    ramp_x = np.exp(-2j * np.pi * np.outer(frac_x, freq))  # (n, size)
    ramp_y = np.exp(-2j * np.pi * np.outer(frac_y, freq))
    return np.fft.ifft2(spectrum[None] * ramp_y[:, :, None] * ramp_x[:, None, :]).real


def _check_psf(psf: np.ndarray) -> np.ndarray:
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise ValueError(f"the PSF must be an odd square image centred on its central pixel; got {psf.shape}")
    return psf


def add_stamps(cube: np.ndarray, stamps: np.ndarray, ix: np.ndarray, iy: np.ndarray, scale: float) -> None:
    """Add ``scale * stamps[k]`` centred on pixel ``(ix[k], iy[k])`` of frame ``k`` (clipped at edges)."""
    _, ny, nx = cube.shape
    h = stamps.shape[-1] // 2
    for k in range(cube.shape[0]):
        y0, x0 = iy[k] - h, ix[k] - h
        ya, yb = max(y0, 0), min(y0 + 2 * h + 1, ny)
        xa, xb = max(x0, 0), min(x0 + 2 * h + 1, nx)
        if ya < yb and xa < xb:
            cube[k, ya:yb, xa:xb] += scale * stamps[k, ya - y0 : yb - y0, xa - x0 : xb - x0]


def companion_model_cube(
    shape: tuple[int, int, int],
    angles: np.ndarray,
    psf: np.ndarray,
    separation: float,
    pa: float,
    flux: float = 1.0,
) -> np.ndarray:
    """A (frames, y, x) float32 cube holding only the companion (``flux`` x ``psf``) in every frame."""
    model = np.zeros(shape, dtype=np.float32)
    _inject_one(model, angles, _check_psf(psf), separation, pa, flux)
    return model


def _inject_one(
    cube: np.ndarray, angles: np.ndarray, psf: np.ndarray, separation: float, pa: float, flux: float
) -> None:
    x, y = companion_positions(separation, pa, angles, cube.shape)
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    stamps = shifted_psfs(psf, x - ix, y - iy)
    add_stamps(cube, stamps, ix, iy, flux)


def inject_companions(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    separation: float | Sequence[float],
    pa: float | Sequence[float],
    flux: float | Sequence[float],
) -> np.ndarray:
    """Return a copy of ``cube`` with companions ``flux x psf`` at (``separation`` px, ``pa`` deg).

    ``separation``, ``pa`` and ``flux`` broadcast against each other (one companion per element);
    a negative flux injects a negative companion (NEGFC). ``psf``: odd square, centred, in the
    normalisation that makes ``flux`` meaningful (unit 1-FWHM-aperture flux: ``flux`` is then
    the companion's aperture flux). For a spectral cube (wavelengths, frames, y, x) give a PSF per
    wavelength (wavelengths, size, size) and ``flux`` per companion or per (companion, wavelength).
    """
    cube = np.asarray(cube)
    angles = np.asarray(angles, dtype=np.float64).ravel()
    sep, pas = np.broadcast_arrays(
        np.atleast_1d(np.asarray(separation, dtype=np.float64)),
        np.atleast_1d(np.asarray(pa, dtype=np.float64)),
    )
    if cube.ndim == 4:
        psf = np.asarray(psf, dtype=np.float64)
        if psf.ndim != 3 or psf.shape[0] != cube.shape[0]:
            raise ValueError(
                f"a spectral cube {cube.shape} needs one PSF per wavelength; got PSF {psf.shape}"
            )
        fl = np.asarray(flux, dtype=np.float64)
        fl = np.broadcast_to(fl.reshape(-1, 1) if fl.ndim < 2 else fl, (sep.size, cube.shape[0]))
        return np.stack(
            [inject_companions(cube[i], angles, psf[i], sep, pas, fl[:, i]) for i in range(cube.shape[0])]
        )
    if cube.ndim != 3 or cube.shape[0] != angles.size:
        raise ValueError(
            f"need a (frames, y, x) cube and one angle per frame; got {cube.shape} and {angles.size}"
        )
    sep, pas, flux_arr = np.broadcast_arrays(sep, pas, np.asarray(flux, dtype=np.float64))
    psf = _check_psf(psf)
    out = cube.astype(np.float32, copy=True)
    for s, p, f in zip(sep.ravel(), pas.ravel(), flux_arr.ravel(), strict=True):
        _inject_one(out, angles, psf, float(s), float(p), float(f))
    return out


class InjectedCube:
    """``cube`` with fake companions added as its pixels are read: :func:`inject_companions`
    without the full copy, for cubes too large to copy (a memory-mapped SPHERE cube).

    ``read(frames, y0, y1, x0, x1)`` returns those frames' rectangle as float32 with the
    companions' stamps added exactly as :func:`inject_companions` adds them (same stamps, same
    order, same float32 rounding), so values are identical. Algorithms that read a cube piece by
    piece (tiled full-frame PCA) use ``read``; any other gets the full copy through
    ``np.asarray`` (``__array__``), equal to ``inject_companions``'s result. Memory: one
    (frames, PSF size^2) float64 stack of stamps per companion.
    """

    def __init__(
        self,
        cube: np.ndarray,
        angles: np.ndarray,
        psf: np.ndarray,
        separation: float | Sequence[float],
        pa: float | Sequence[float],
        flux: float | Sequence[float],
    ):
        self.companions = []  # (ix, iy, stamps, flux) in injection order
        if isinstance(cube, InjectedCube):
            # Fakes into a cube that already has some (e.g. the cube with the detections removed):
            # the same base, its companions first, then these, as chained inject_companions calls
            # add them (each call's float32 result is the next one's input: identical values).
            self.companions.extend(cube.companions)
            cube = cube.base
        self.base = np.asarray(cube)  # a view: a memory-mapped cube stays mapped
        angles = np.asarray(angles, dtype=np.float64).ravel()
        if self.base.ndim != 3 or self.base.shape[0] != angles.size:
            raise ValueError(
                f"need a (frames, y, x) cube and one angle per frame; got {self.base.shape} and {angles.size}"
            )
        sep, pas, fluxes = np.broadcast_arrays(
            np.atleast_1d(np.asarray(separation, dtype=np.float64)),
            np.atleast_1d(np.asarray(pa, dtype=np.float64)),
            np.asarray(flux, dtype=np.float64),
        )
        psf = _check_psf(psf)
        for s, p, f in zip(sep.ravel(), pas.ravel(), fluxes.ravel(), strict=True):
            x, y = companion_positions(float(s), float(p), angles, self.base.shape)
            ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
            self.companions.append((ix, iy, shifted_psfs(psf, x - ix, y - iy), float(f)))
        # Each track's extent (y min, y max, x min, x max of the stamp centres): ``read`` skips
        # a companion whose track misses its window without looking at the frames.
        self._extents = [
            (int(iy.min()), int(iy.max()), int(ix.min()), int(ix.max())) for ix, iy, _, _ in self.companions
        ]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def read(self, frames: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Frames ``frames`` (int array), rows ``y0:y1``, columns ``x0:x1``, fakes included (float32)."""
        frames = np.asarray(frames, dtype=np.intp).ravel()
        out = np.empty((frames.size, y1 - y0, x1 - x0), dtype=np.float32)
        for j, k in enumerate(frames):  # frame by frame: no copy in the cube's own dtype
            out[j] = self.base[k, y0:y1, x0:x1]
        _, ny, nx = self.base.shape
        for (ix, iy, stamps, flux), (ymin, ymax, xmin, xmax) in zip(
            self.companions, self._extents, strict=True
        ):
            h = stamps.shape[-1] // 2
            if ymax + h < y0 or ymin - h >= y1 or xmax + h < x0 or xmin - h >= x1:
                continue  # this companion's track misses the window in every frame
            sy, sx = iy[frames] - h, ix[frames] - h  # stamp corners; clip to the frame, then the window
            ya, yb = np.maximum(np.maximum(sy, 0), y0), np.minimum(np.minimum(sy + 2 * h + 1, ny), y1)
            xa, xb = np.maximum(np.maximum(sx, 0), x0), np.minimum(np.minimum(sx + 2 * h + 1, nx), x1)
            # Only the frames whose stamp meets the window (the tiled PCA reads many small
            # windows: a Python loop over every frame and companion was 12 % of a fake pass).
            for j in np.flatnonzero((ya < yb) & (xa < xb)).tolist():
                k, a, b, c, d, s, t = (int(v) for v in (frames[j], ya[j], yb[j], xa[j], xb[j], sy[j], sx[j]))
                out[j, a - y0 : b - y0, c - x0 : d - x0] += flux * stamps[k, a - s : b - s, c - t : d - t]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The full float32 cube with the fakes (the copy :func:`inject_companions` makes)."""
        full = self.read(np.arange(self.base.shape[0]), 0, self.base.shape[1], 0, self.base.shape[2])
        return full if dtype is None else full.astype(dtype, copy=False)
