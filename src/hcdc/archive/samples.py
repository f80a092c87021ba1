"""Raw FITS files with real headers, made quickly (tests, benchmarks, demonstrations).

A real ESO header (e.g. from ``../shared/data/sphere_headers``) is turned into a small FITS
file (the real primary header, a tiny data array in place of the 2k x 2k frames). Many
distinct files can be cloned from one template by shifting its observing time: DATE-OBS,
MJD-OBS, ARCFILE and the detector sequence times move together, so each clone has different
bytes (a different sha256) and a consistent header. Cloning patches the 80-character card
images in the already-rendered header, which is ~100x faster than re-rendering the header
with astropy for every file.
"""

from __future__ import annotations

import datetime as dt
import io
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

CARD = 80
# Cards that hold the observing time (ISO strings) and move with it when cloning.
TIME_CARDS = ("DATE-OBS", "ESO DET SEQ UTC", "ESO DET FRAM UTC", "DATE")
MJD_CARD = "MJD-OBS"
ARCFILE_CARD = "ARCFILE"
MJD_UNIX_EPOCH = 40587.0  # MJD of 1970-01-01T00:00:00 UTC


def _iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-2]  # 0.1 ms, as ESO writes DATE-OBS


def mjd_from_datetime(value: dt.datetime) -> float:
    """MJD (UTC) of a naive UTC datetime."""
    return MJD_UNIX_EPOCH + (value - dt.datetime(1970, 1, 1)).total_seconds() / 86400.0


def small_data_header(header: fits.Header, shape: tuple[int, int] = (4, 4)) -> fits.Header:
    """A copy of ``header`` describing a small float32 image of ``shape`` (y, x)."""
    out = header.copy()
    for key in [k for k in out if k.startswith("NAXIS") and k != "NAXIS"]:
        del out[key]
    out["NAXIS"] = 2
    out.insert("NAXIS", ("NAXIS1", shape[1]), after=True)
    out.insert("NAXIS1", ("NAXIS2", shape[0]), after=True)
    out["BITPIX"] = -32
    return out


def write_fits(
    path: str | Path, header: fits.Header, shape: tuple[int, int] = (4, 4), fill: float = 0.0
) -> Path:
    """Write a FITS file with the real ``header`` and a small data array; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(TimeShiftTemplate(header, shape, fill).render())
    return path


class TimeShiftTemplate:
    """A rendered FITS file whose observing time can be moved (see the module docstring)."""

    def __init__(self, header: fits.Header, shape: tuple[int, int] = (4, 4), fill: float = 0.0) -> None:
        header = small_data_header(header, shape)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VerifyWarning)
            hdu = fits.PrimaryHDU(np.full(shape, fill, dtype=np.float32), header=header)
            # ESO headers carry a few non-standard cards; astropy fixes them on output.
            hdu.writeto(buffer, output_verify="silentfix")
        self.content = buffer.getvalue()
        written = fits.Header.fromstring(self.content.decode("ascii", errors="replace"))
        date_obs = written.get("DATE-OBS")
        self.date_obs = dt.datetime.fromisoformat(date_obs) if date_obs else None
        self._cards: dict[str, tuple[int, fits.Card]] = {}
        for key in (*TIME_CARDS, MJD_CARD, ARCFILE_CARD):
            if key in written:
                card = written.cards[key]
                offset = self.content.find(str(card).encode("ascii"))
                if offset >= 0 and offset % CARD == 0:
                    self._cards[key] = (offset, card)

    def render(self, date_obs: dt.datetime | None = None) -> bytes:
        """File bytes, with the observing time moved to ``date_obs`` (naive UTC) if given."""
        if date_obs is None or self.date_obs is None:
            return self.content
        shift = date_obs - self.date_obs
        content = bytearray(self.content)
        for key, (offset, card) in self._cards.items():
            if key == MJD_CARD:
                value: object = round(mjd_from_datetime(date_obs), 8)
            elif key == ARCFILE_CARD:
                value = f"SPHER.{date_obs.isoformat(timespec='milliseconds')}.fits"
            else:
                try:
                    value = _iso(dt.datetime.fromisoformat(str(card.value)) + shift)
                except ValueError:
                    continue
            keyword = f"HIERARCH {card.keyword}" if card.keyword.startswith("ESO ") else card.keyword
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VerifyWarning)
                image = str(fits.Card(keyword, value, card.comment))
            if len(image) != CARD:  # would not fit in one card: keep the original
                continue
            content[offset : offset + CARD] = image.encode("ascii")
        return bytes(content)

    def write(self, path: str | Path, date_obs: dt.datetime | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.render(date_obs))
        return path


def clone_series(
    header: fits.Header,
    directory: str | Path,
    count: int,
    start: dt.datetime,
    step: dt.timedelta = dt.timedelta(seconds=2),
    prefix: str = "SPHER",
) -> list[Path]:
    """Write ``count`` distinct files from one header, ``step`` apart from ``start``."""
    template = TimeShiftTemplate(header)
    paths = []
    for i in range(count):
        when = start + i * step
        name = f"{prefix}.{when.isoformat(timespec='milliseconds').replace(':', '_')}.fits"
        paths.append(template.write(Path(directory) / name, when))
    return paths
