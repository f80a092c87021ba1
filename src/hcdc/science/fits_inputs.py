"""Reading the FITS and text files a user brings (cubes, angles, PSFs, wavelengths).

Every error is an :class:`InputError` whose message names the file and the reason, so that an
interface can show it as is. Cubes are opened memory-mapped: a multi-GB cube is then read plane
by plane by the post-processing orchestrator and never loaded whole.

Used by the ``l2-postprocess`` recipe (:mod:`hcdc.pipeline.recipes.postprocess`) for user cubes
and by ``hcdc center``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.science.orientation import level1_convention

__all__ = [
    "TEXT_SUFFIXES",
    "InputError",
    "declared_convention",
    "header_float",
    "read_angles",
    "read_fits_array",
    "read_vector",
]

#: Suffixes of the text files read as one column of numbers (comma-separated for ``.csv``).
TEXT_SUFFIXES = frozenset({".txt", ".dat", ".csv", ".lst", ".rdb"})


class InputError(ValueError):
    """A user-supplied input file is unusable; the message names the file and the reason."""


def _open_fits(path: Path, what: str) -> fits.HDUList:
    if not path.exists():
        raise InputError(f"{what} file {path}: no such file")
    if not path.is_file():
        raise InputError(f"{what} file {path}: not a regular file")
    try:
        return fits.open(path, memmap=True, lazy_load_hdus=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} file {path}: not a FITS file ({exc})") from exc


def _first_data_hdu(hdul: fits.HDUList, path: Path, what: str) -> fits.hdu.base._BaseHDU:
    for hdu in hdul:
        if hdu.is_image and hdu.data is not None and hdu.data.size > 0:
            return hdu
    raise InputError(f"{what} file {path}: no image data in any HDU")


def _check_finite(data: np.ndarray, path: Path, what: str) -> None:
    """Raise if ``data`` holds NaN/inf; scans a memory-mapped cube one plane at a time."""
    planes = data.reshape(-1, *data.shape[-2:]) if data.ndim >= 2 else data.reshape(1, -1)
    for k in range(planes.shape[0]):
        plane = planes[k]
        if not np.all(np.isfinite(plane)):
            bad = int(np.size(plane) - np.count_nonzero(np.isfinite(plane)))
            index = np.unravel_index(k, data.shape[:-2]) if data.ndim > 2 else ()
            where = f" in plane {tuple(int(i) for i in index)}" if index else ""
            raise InputError(
                f"{what} file {path}: {bad} NaN or infinite pixel(s){where}; "
                "replace them (bad-pixel correction) before post-processing"
            )


def read_fits_array(
    path: str | Path, what: str, ndims: tuple[int, ...], check_finite: bool = True
) -> tuple[np.ndarray, fits.Header]:
    """The image data of the first data HDU of ``path`` (memory-mapped, native dtype) and its header.

    ``what`` names the input in error messages; ``ndims`` lists the accepted dimensionalities.
    """
    path = Path(path)
    hdul = _open_fits(path, what)
    try:
        hdu = _first_data_hdu(hdul, path, what)
        data, header = hdu.data, hdu.header
    except InputError:
        hdul.close()
        raise
    except (OSError, ValueError, TypeError) as exc:
        hdul.close()
        raise InputError(f"{what} file {path}: unreadable data ({exc})") from exc
    if data.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise InputError(f"{what} file {path}: expected a {expected} array, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{what} file {path}: data type {data.dtype} is not numeric")
    if check_finite:
        _check_finite(data, path, what)
    return data, header


def read_vector(path: str | Path, what: str) -> np.ndarray:
    """A 1-D float64 vector (angles, wavelengths) from FITS (any shape, flattened) or a text file."""
    path = Path(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        if not path.is_file():
            raise InputError(f"{what} file {path}: no such file")
        try:
            values = np.loadtxt(path, dtype=np.float64, delimiter="," if path.suffix == ".csv" else None)
        except ValueError as exc:
            raise InputError(f"{what} file {path}: not a column of numbers ({exc})") from exc
    else:
        data, _ = read_fits_array(path, what, ndims=(1, 2), check_finite=False)
        if data.ndim == 2 and 1 not in data.shape:
            raise InputError(f"{what} file {path}: expected a vector, got a {data.shape} array")
        values = np.asarray(data, dtype=np.float64)
    values = values.ravel()
    if values.size == 0:
        raise InputError(f"{what} file {path}: empty")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{what} file {path}: contains NaN or infinite values")
    return values


def read_angles(path: str | Path) -> tuple[np.ndarray, fits.Header]:
    """Angles (deg) and the header that may declare their convention: the ``DEROT`` HDU of an hcdc
    Level 1 ``frames.fits``, else the first data HDU of a FITS file (or a text column)."""
    path = Path(path)
    if path.suffix.lower() not in TEXT_SUFFIXES and path.is_file():
        try:
            with fits.open(path) as hdul:
                if "DEROT" in hdul and hdul["DEROT"].data is not None:
                    values = np.asarray(hdul["DEROT"].data, dtype=np.float64).ravel()
                    if not np.all(np.isfinite(values)):
                        raise InputError(f"angles file {path}: DEROT contains NaN or infinite values")
                    return values, hdul["DEROT"].header.copy()
        except OSError:
            pass  # read_vector names the problem
        _, header = read_fits_array(path, "angles", ndims=(1, 2), check_finite=False)
        return read_vector(path, "angles"), header
    return read_vector(path, "angles"), fits.Header()


def declared_convention(angles_header: fits.Header, cube_header: fits.Header) -> tuple[str | None, bool]:
    """The angle convention an input declares (``ANGCONV`` on the angles, or hcdc Level 1's
    ``HIERARCH HCDC ANGCONV`` on the cube; ``'derotation'`` without ``ROTSENSE = 'CCW'`` is hcdc's
    old clockwise sense, :func:`hcdc.science.orientation.level1_convention`) and whether the
    angles include the offsets (``ANGSKY``)."""
    for header, prefix in ((angles_header, ""), (cube_header, "HIERARCH HCDC ")):
        convention = level1_convention(header, prefix)
        if convention is not None:
            return convention, bool(header.get(f"{prefix}ANGSKY", False))
    return None, False


def header_float(header: fits.Header, key: str) -> float | None:
    """A numeric header value, None when absent or not a number (ESO writes RA/DEC in deg)."""
    value = header.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
