"""Calibrated observables of an OIFITS file as flat arrays for model fitting.

:func:`read_observables` returns the unflagged, finite V² (OI_VIS2) and closure phases
(OI_T3 T3PHI) of one target, every INSNAME and night together, as
:class:`hcdc.science.interferometry.fitting.Observables` (baselines and wavelengths in metres,
closure phases in degrees). Rows are matched to their wavelengths through INSNAME.

Bulk fits read many files, and astropy's table machinery costs ~50 ms per file (column
objects, FITS_rec views), several times the fit itself. Plain (uncompressed) files are
therefore read by :func:`_raw_tables`: headers parsed with the fast card parser
(:func:`hcdc.instruments.eso_headers.parse_header_block`) and the OI tables' rows viewed
in place with a numpy dtype built from ``TFORMn``. Files it does not handle (compressed,
scaled or variable-length columns) go through astropy; both give the same arrays (tested on
every real file).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc.instruments.base import MetadataError, UnreadableFileError
from hcdc.instruments.eso_headers import parse_header_block
from hcdc.instruments.fits_file import open_whole
from hcdc.science.interferometry.fitting import Observables


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


#: The tables read for fitting.
_TABLES = frozenset({"OI_TARGET", "OI_WAVELENGTH", "OI_VIS2", "OI_T3"})
Table = tuple[str, Mapping[str, Any], Mapping[str, np.ndarray]]  # EXTNAME, header values, columns

BLOCK, CARD = 2880, 80
_END = b"END" + b" " * 77
_TFORM = re.compile(r"^\s*(\d*)([LBIJKAED])\s*$")
_CODES = {"L": "u1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "A": "S", "E": ">f4", "D": ">f8"}


class _Unsupported(Exception):
    """A file the raw reader leaves to astropy."""


def _raw_tables(raw: bytes) -> Iterator[Table]:
    """The OI tables of an uncompressed FITS file's bytes (see the module docstring)."""
    pos = 0
    while pos < len(raw):
        end = raw.find(_END, pos)
        while end != -1 and (end - pos) % CARD:
            end = raw.find(_END, end + 1)
        if end == -1:
            raise _Unsupported("no END card")
        header_len = ((end + CARD - pos + BLOCK - 1) // BLOCK) * BLOCK
        values = parse_header_block(raw[pos : pos + header_len])
        data_start = pos + header_len
        naxis = int(values.get("NAXIS", 0))
        size = 0
        if naxis:
            size = abs(int(values.get("BITPIX", 8))) // 8
            for axis in range(1, naxis + 1):
                size *= int(values.get(f"NAXIS{axis}", 0))
        size += int(values.get("PCOUNT", 0) or 0)
        if pos and _text(values.get("EXTNAME", "")).upper() in _TABLES:
            yield _text(values["EXTNAME"]).upper(), values, _columns(values, raw, data_start)
        pos = data_start + ((size + BLOCK - 1) // BLOCK) * BLOCK


def _columns(values: Mapping[str, Any], raw: bytes, start: int) -> dict[str, np.ndarray]:
    if _text(values.get("XTENSION", "")) != "BINTABLE":
        raise _Unsupported("not a binary table")
    fields: list[tuple[str, str]] = []
    logical: set[str] = set()
    for index in range(1, int(values.get("TFIELDS", 0)) + 1):
        if f"TSCAL{index}" in values or f"TZERO{index}" in values or f"TDIM{index}" in values:
            raise _Unsupported("scaled or shaped column")
        match = _TFORM.match(str(values.get(f"TFORM{index}", "")))
        if match is None:
            raise _Unsupported(f"column format {values.get(f'TFORM{index}')!r}")
        repeat = int(match.group(1) or 1)
        name = _text(values.get(f"TTYPE{index}", f"COL{index}")).upper()
        code = _CODES[match.group(2)]
        if code == "S":
            fields.append((name, f"S{repeat}"))
            continue
        fields.append((name, code if repeat == 1 else f"({repeat},){code}"))
        if match.group(2) == "L":
            logical.add(name)
    dtype = np.dtype(fields)
    if dtype.itemsize != int(values.get("NAXIS1", -1)):
        raise _Unsupported("row length differs from NAXIS1")
    rows = np.frombuffer(raw, dtype=dtype, count=int(values.get("NAXIS2", 0)), offset=start)
    out = {}
    for name in dtype.names or ():
        column = rows[name]
        # FITS logical: 'T' true, 'F' false, 0 undefined (taken as not flagged)
        out[name] = column == ord("T") if name in logical else column
    return out


def _astropy_tables(hdul: fits.HDUList) -> Iterator[Table]:
    for hdu in hdul[1:]:
        extname = _text(hdu.header.get("EXTNAME", "")).upper()
        if extname in _TABLES and hdu.data is not None:
            data = hdu.data
            yield extname, hdu.header, {n.upper(): np.asarray(data[n]) for n in data.columns.names}


def _rows_of(
    cols: Mapping[str, np.ndarray], key: str, rows: np.ndarray, shape: tuple[int, ...], per_channel: bool
) -> np.ndarray:
    """Column ``key`` at the selected ``rows`` as a (rows, channels) array: per-channel columns
    reshaped, per-row columns (u, v) repeated over the channels."""
    values = np.asarray(cols[key])[rows]
    if per_channel:
        return values.astype(bool if values.dtype == bool else float).reshape(shape)
    return np.broadcast_to(values.astype(float)[:, None], shape)


def _usable(values: np.ndarray, errors: np.ndarray, flags: np.ndarray) -> np.ndarray:
    return ~flags & np.isfinite(values) & np.isfinite(errors) & (errors > 0)


def observables_of(tables: list[Table], target: str | None = None, name: str = "") -> Observables:
    """The V² and closure phases of ``target`` (an OI_TARGET ``TARGET``; may be omitted when
    the file has one target) from a file's OI tables. Raises :class:`MetadataError` naming
    ``name`` and the reason."""
    waves: dict[str, np.ndarray] = {}
    targets: dict[str, int] = {}
    for extname, header, cols in tables:
        if extname == "OI_WAVELENGTH":
            waves.setdefault(_text(header.get("INSNAME", "")), np.asarray(cols["EFF_WAVE"], dtype=float))
        elif extname == "OI_TARGET":
            for tid, tname in zip(cols["TARGET_ID"], cols["TARGET"], strict=True):
                targets.setdefault(_text(tname), int(tid))
    if target is None:
        if len(targets) != 1:
            raise MetadataError(
                f"{name}: {len(targets)} targets ({', '.join(targets)}); say which one to fit"
            )
        target = next(iter(targets))
    if target not in targets:
        raise MetadataError(f"{name}: no target {target!r} in OI_TARGET ({', '.join(targets)})")
    tid = targets[target]
    v2: list[tuple[np.ndarray, ...]] = []
    t3: list[tuple[np.ndarray, ...]] = []
    for extname, header, cols in tables:
        if extname not in ("OI_VIS2", "OI_T3"):
            continue
        insname = _text(header.get("INSNAME", ""))
        if insname not in waves:
            raise MetadataError(f"{name}: {extname} refers to INSNAME {insname!r} with no OI_WAVELENGTH")
        rows = np.asarray(cols["TARGET_ID"]) == tid
        if not rows.any():
            continue
        nwave = waves[insname].size
        wl = np.broadcast_to(waves[insname], (int(rows.sum()), nwave))

        def column(key: str, per_channel: bool) -> np.ndarray:
            return _rows_of(cols, key, rows, wl.shape, per_channel)  # noqa: B023 - called in this iteration

        flags = column("FLAG", True)
        if extname == "OI_VIS2":
            value, error = column("VIS2DATA", True), column("VIS2ERR", True)
            keep = _usable(value, error, flags)
            u, v = column("UCOORD", False), column("VCOORD", False)
            v2.append((u[keep], v[keep], wl[keep], value[keep], error[keep]))
        else:
            value, error = column("T3PHI", True), column("T3PHIERR", True)
            keep = _usable(value, error, flags)
            coords = [column(c, False)[keep] for c in ("U1COORD", "V1COORD", "U2COORD", "V2COORD")]
            t3.append((*coords, wl[keep], value[keep], error[keep]))

    def stack(parts: list[tuple[np.ndarray, ...]], n: int) -> list[np.ndarray]:
        return [np.concatenate([p[i] for p in parts]) if parts else np.empty(0) for i in range(n)]

    vu, vv, vwl, vval, verr = stack(v2, 5)
    t_u1, t_v1, t_u2, t_v2, twl, tval, terr = stack(t3, 7)
    return Observables(
        u=vu,
        v=vv,
        wavelength=vwl,
        vis2=vval,
        vis2_err=verr,
        t3_u1=t_u1,
        t3_v1=t_v1,
        t3_u2=t_u2,
        t3_v2=t_v2,
        t3_wavelength=twl,
        t3phi=tval,
        t3phi_err=terr,
        name=f"{name}:{target}" if name else target,
    )


def read_observables(path: str | Path, target: str | None = None, *, fast: bool = True) -> Observables:
    """:func:`observables_of` for the file at ``path`` (plain or gzipped OIFITS); ``fast=False``
    reads every table with astropy."""
    path = Path(path)
    try:
        if fast and not path.name.lower().endswith((".gz", ".z", ".bz2")):
            raw = path.read_bytes()
            try:
                return observables_of(list(_raw_tables(raw)), target, name=path.name)
            except _Unsupported:
                pass  # astropy below
        with open_whole(path) as hdul:
            return observables_of(list(_astropy_tables(hdul)), target, name=path.name)
    except UnreadableFileError as exc:
        raise UnreadableFileError(f"{path.name}: {exc}") from exc
    except MetadataError:
        raise
    except (KeyError, ValueError, OSError, gzip.BadGzipFile) as exc:
        raise MetadataError(f"{path.name}: cannot read V2/T3 ({type(exc).__name__}: {exc})") from exc
