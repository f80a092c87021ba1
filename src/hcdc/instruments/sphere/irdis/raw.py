"""IRDIS raw frames: header facts of one raw file, lazy scaled access to its DITs, and masters.

Used by the Level 1 reduction (:mod:`hcdc.instruments.sphere.irdis.level1`) and the calibration
masters (:mod:`hcdc.instruments.sphere.irdis.masters`), so both build the same masters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration import darks, timing


class Level1Error(ValueError):
    """A Level 1 reduction cannot proceed; the message names the file and the reason."""


@dataclass
class RawFile:
    """Header facts of one raw file and lazy, scaled access to its DITs."""

    path: Path
    role: str
    header: fits.Header
    ndit: int
    dit: float
    shape: tuple[int, int]

    @property
    def name(self) -> str:
        return self.path.name

    def _open(self) -> fits.HDUList:
        return fits.open(self.path, memmap=True, do_not_scale_image_data=True)

    def _image_hdu(self, hdul: fits.HDUList) -> fits.ImageHDU | fits.PrimaryHDU:
        for hdu in hdul:
            if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
                return hdu
        raise Level1Error(f"{self.path}: no image data in the file")

    def read(self, dits: slice | int = slice(None), rows: slice = slice(None)) -> np.ndarray:
        """DIT(s) ``dits`` restricted to detector ``rows``, as float32 (BSCALE/BZERO applied).

        An integer ``dits`` gives one frame ``(rows, x)``; a slice gives ``(n, rows, x)``.
        """
        with self._open() as hdul:
            hdu = self._image_hdu(hdul)
            data = hdu.data
            if data.ndim == 2:
                data = data[np.newaxis]
            out = np.array(data[dits, rows, :], dtype=np.float32)
            bscale = float(hdu.header.get("BSCALE", 1.0))
            bzero = float(hdu.header.get("BZERO", 0.0))
        if bscale != 1.0:
            out *= np.float32(bscale)
        if bzero != 0.0:
            out += np.float32(bzero)
        return out

    def mean(self) -> np.ndarray:
        """Mean of all DITs (y, x), accumulated one DIT at a time."""
        total = np.zeros(self.shape, dtype=np.float64)
        for i in range(self.ndit):
            total += self.read(i)
        return (total / self.ndit).astype(np.float32)

    def timing(self) -> tuple[Time, Time, Time]:
        t = sc.read_timing(self.header)
        return timing.dit_times(t.date_obs, t.fram_utc, self.ndit, t.dit, t.ditdelay)


def open_raw(path: str | Path, role: str) -> RawFile:
    """Open one IRDIS raw file given as ``role`` (its DPR TYPE must be ``role``): header facts
    checked (timing keywords, IRDIS arm, DITs present), data read lazily. Raises
    :class:`Level1Error` naming the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise Level1Error(f"{path}: raw file not found (role {role})")
    try:
        header = fits.getheader(path, 0)
    except (OSError, ValueError) as exc:
        raise Level1Error(f"{path}: not a readable FITS file ({exc})") from exc
    try:
        t = sc.read_timing(header)
    except (KeyError, ValueError) as exc:
        raise Level1Error(f"{path}: {exc}") from exc
    dpr_type = str(header.get("HIERARCH ESO DPR TYPE", role)).strip()
    if dpr_type != role:
        raise Level1Error(f"{path}: given as {role} but its DPR TYPE is {dpr_type!r}")
    arm = str(header.get("HIERARCH ESO SEQ ARM", "IRDIS")).strip()
    if arm != "IRDIS":
        raise Level1Error(f"{path}: SEQ ARM is {arm!r}, not an IRDIS file")
    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2), None)
            if hdu is None:
                raise Level1Error(f"{path}: no image data in the file")
            dims = hdu.shape
    except OSError as exc:
        raise Level1Error(f"{path}: cannot read the image data ({exc})") from exc
    ndit = dims[0] if len(dims) == 3 else 1
    if ndit != t.ndit:
        raise Level1Error(f"{path}: data hold {ndit} DITs but DET NDIT = {t.ndit}")
    return RawFile(path, role, header, ndit, t.dit, (int(dims[-2]), int(dims[-1])))


def dit_key(dit: float) -> float:
    """DITs match when equal after rounding to 0.01 s (vlt-sphere)."""
    return round(float(dit), 2)


# --------------------------------------------------------------------------------------------


def master_from_files(
    files: Sequence[RawFile], method: str = "mean", sigma: float = 5.0, memory_budget_mb: float = 256.0
) -> np.ndarray:
    """Master (ADU per DIT) of all DITs of ``files``: sigma-clipped mean (``sigma``, robust sigma)
    or median (``method``), built on bands of rows so that the stack fits ``memory_budget_mb`` MB."""
    ny, nx = files[0].shape
    n_total = sum(f.ndit for f in files)
    bytes_per_row = n_total * nx * 4 * 4  # float32 stack and working copies inside master_frame
    rows_per_band = max(1, min(ny, int(memory_budget_mb * 1e6 // bytes_per_row)))
    master = np.empty((ny, nx), dtype=np.float32)
    for r0 in range(0, ny, rows_per_band):
        rows = slice(r0, min(r0 + rows_per_band, ny))
        stack = np.concatenate([f.read(slice(None), rows) for f in files], axis=0)
        master[rows] = darks.master_frame(stack, method, sigma)
    return master
