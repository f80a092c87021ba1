"""A simulated astrometric calibration field (a star cluster) with known sky positions and a
known detector geometry (pure functions), to test the plate-scale / True North measurement of
:mod:`hcdc.science.calibration.astrometric_field` with a known answer.

The sky: ``n_stars`` stars uniform in a square of ``field_arcsec`` around the field centre,
magnitudes uniform in ``mag_range``. The detector: the conventions of
:mod:`hcdc.science.calibration.astrometric_field` (``N + iE = scale exp(i rotation) (y - i x)``),
then the anamorphism: the raw detector is compressed by ``anamorphism_xy`` (the factors the
pipeline stretches by), and the pointing is off by ``pointing_offset_mas``. The image: each star
a circular Gaussian core (``fwhm_px``, the diffraction limit) holding ``strehl`` of its flux
plus a Gaussian halo (``halo_fwhm_px``) holding the rest, on a constant sky, with Poisson noise
and Gaussian read noise (electrons; gain 1). The reference list: the true positions plus
Gaussian errors of ``catalogue_error_mas`` per coordinate (the list's stated error).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hcdc.science.calibration.astrometric_field import FWHM_TO_SIGMA, MAS_PER_DEG

__all__ = ["FieldSpec", "simulate_field"]


@dataclass(frozen=True)
class FieldSpec:
    """Truth and observing set-up of one simulated field (units in the names)."""

    ra0_deg: float = 168.7875  # NGC 3603's centre, roughly
    dec0_deg: float = -61.2614
    n_stars: int = 40
    field_arcsec: float = 10.0
    mag_range: tuple[float, float] = (10.0, 15.0)
    scale_mas: float = 12.255
    rotation_deg: float = -1.75
    anamorphism_xy: tuple[float, float] = (1.0, 1.0062)
    pointing_offset_mas: tuple[float, float] = (150.0, -80.0)  # (east, north) of the image centre
    shape: tuple[int, int] = (1024, 1024)  # (ny, nx)
    fwhm_px: float = 3.3  # lambda/D in H at 12.25 mas/px
    halo_fwhm_px: float = 60.0
    strehl: float = 0.7
    zero_point_e: float = 2.0e8  # electrons of a magnitude-0 star in the exposure
    sky_e: float = 200.0  # electrons per pixel
    read_noise_e: float = 10.0
    catalogue_error_mas: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _deg_from_tangent(
    east_mas: np.ndarray, north_mas: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse gnomonic projection: (ra, dec) in deg of tangent-plane offsets in mas."""
    xi = np.radians(np.asarray(east_mas) / MAS_PER_DEG)
    eta = np.radians(np.asarray(north_mas) / MAS_PER_DEG)
    ra0r, dec0r = np.radians(ra0), np.radians(dec0)
    denom = np.cos(dec0r) - eta * np.sin(dec0r)
    ra = ra0r + np.arctan2(xi, denom)
    dec = np.arctan2(np.sin(dec0r) + eta * np.cos(dec0r), np.hypot(xi, denom))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def _add_gaussian(image: np.ndarray, x: float, y: float, flux: float, fwhm: float) -> None:
    sigma = fwhm * FWHM_TO_SIGMA
    half = int(np.ceil(5 * sigma))
    ny, nx = image.shape
    x0, x1 = max(0, int(x) - half), min(nx, int(x) + half + 2)
    y0, y1 = max(0, int(y) - half), min(ny, int(y) + half + 2)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    image[y0:y1, x0:x1] += (
        flux / (2 * np.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    )


def simulate_field(
    spec: FieldSpec, rng: np.random.Generator, stars: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> dict[str, Any]:
    """The image (electrons, float32, ``spec.shape``), the reference list (``id``, ``ra_deg``,
    ``dec_deg``, ``mag``, ``pos_err_mas``: true positions plus their stated error) and the truth
    (true sky offsets, true detector positions, the spec). ``stars``: the true ``(east_mas,
    north_mas, mag)`` to image (e.g. the same field in IRDIS's second channel), else drawn."""
    if stars is None:
        half = spec.field_arcsec * 1000.0 / 2
        east = rng.uniform(-half, half, spec.n_stars)
        north = rng.uniform(-half, half, spec.n_stars)
        mags = rng.uniform(*spec.mag_range, spec.n_stars)
    else:
        east, north, mags = (np.asarray(v, float) for v in stars)
    n_stars = len(east)
    ny, nx = spec.shape
    k = spec.scale_mas * np.exp(1j * np.radians(spec.rotation_deg))
    # offsets from the image centre: the pointing is off by pointing_offset_mas
    w = (north - spec.pointing_offset_mas[1]) + 1j * (east - spec.pointing_offset_mas[0])
    z = w / k  # y - i x of the anamorphism-corrected detector
    x_corr, y_corr = -z.imag, z.real
    x = nx / 2.0 + x_corr / spec.anamorphism_xy[0]
    y = ny / 2.0 + y_corr / spec.anamorphism_xy[1]
    image = np.full(spec.shape, spec.sky_e, dtype=np.float64)
    flux = spec.zero_point_e * 10 ** (-0.4 * mags)
    for xi, yi, fi in zip(x, y, flux, strict=True):
        _add_gaussian(image, xi, yi, spec.strehl * fi, spec.fwhm_px)
        _add_gaussian(image, xi, yi, (1 - spec.strehl) * fi, spec.halo_fwhm_px)
    image = rng.poisson(image).astype(np.float64) + rng.normal(0, spec.read_noise_e, spec.shape)
    error = spec.catalogue_error_mas
    ra, dec = _deg_from_tangent(
        east + rng.normal(0, error, n_stars) if error > 0 else east,
        north + rng.normal(0, error, n_stars) if error > 0 else north,
        spec.ra0_deg,
        spec.dec0_deg,
    )
    catalogue = [
        {
            "id": f"S{i + 1:03d}",
            "ra_deg": float(ra[i]),
            "dec_deg": float(dec[i]),
            "mag": round(float(mags[i]), 3),
            "pos_err_mas": error,
        }
        for i in range(n_stars)
    ]
    truth = {
        "spec": spec.as_dict(),
        "east_mas": east.tolist(),
        "north_mas": north.tolist(),
        "mag": mags.tolist(),
        "x_px": x.tolist(),
        "y_px": y.tolist(),
        "inside": ((x > 0) & (x < nx - 1) & (y > 0) & (y < ny - 1)).tolist(),
    }
    return {"image": image.astype(np.float32), "catalogue": catalogue, "truth": truth}
