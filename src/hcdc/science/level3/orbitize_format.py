"""Reading and writing relative astrometry in orbitize's CSV format (and its common variants).

Accepted (one row per epoch and object; ``#`` lines are comments):

* ``epoch`` -- MJD (a number, 1900-2200) or an ISO date/time (``2015-01-30``, ``2015-01-30T04:48``);
  ``epoch_mjd`` and ``mjd`` are read as ``epoch``;
* ``object`` -- orbitize's integer (1, 2, ...; 0 is the host and only carries RVs) or a name;
  absent means a single object "1";
* per row, either ``raoff, raoff_err, decoff, decoff_err`` [mas, RA offset east-positive]
  with optional ``radec_corr``, or ``sep, sep_err`` [mas], ``pa, pa_err`` [deg E of N] with
  optional ``seppa_corr``, or orbitize's generic ``quant1, quant1_err, quant2, quant2_err,
  quant12_corr, quant_type`` with ``quant_type`` = ``radec`` / ``seppa`` (``rv`` rows are skipped);
* unit suffixes ``_mas`` / ``_deg`` on column names are accepted (``sep_mas``, ``pa_err_deg``);
* rows with only ``rv`` (radial velocities) are skipped.

Bad input raises :class:`AstrometryFormatError` naming the file, the line and the reason.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from hcdc.science.level3.astrometry import RelativeAstrometry, radec_covariance, seppa_to_radec

MJD_MIN, MJD_MAX = 15020.0, 124593.0  # 1900-01-01 .. 2200-01-01


class AstrometryFormatError(ValueError):
    """An astrometry file that cannot be read; the message names the file, line and reason."""


_ALIASES = {"epoch_mjd": "epoch", "mjd": "epoch", "seppa_corr": "seppa_corr", "sep_pa_corr": "seppa_corr"}


def _column_key(raw: str) -> str:
    key = raw.strip().lower()
    key = re.sub(r"_(mas|deg|degrees)$", "", key)
    key = key.replace("_err_mas", "_err").replace("_err_deg", "_err")
    return _ALIASES.get(key, key)


def _number(text: str | None) -> float | None:
    if text is None or text.strip() == "" or text.strip().lower() in {"nan", "--"}:
        return None
    return float(text)


def parse_epoch(text: str) -> float:
    """An MJD from a number (MJD) or an ISO date/time string (UTC)."""
    from astropy.time import Time

    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            return float(Time(text, scale="utc").mjd)
        except ValueError as exc:
            raise ValueError(f"epoch {text!r} is neither an MJD nor an ISO date") from exc
    if not MJD_MIN <= value <= MJD_MAX:
        raise ValueError(
            f"epoch {value:g} is not an MJD between 1900 and 2200 (give MJD, e.g. 57009.13, or an ISO date)"
        )
    return value


def _need(row: dict[str, str], keys: Sequence[str], what: str) -> list[float]:
    values = [_number(row.get(k)) for k in keys]
    missing = [k for k, v in zip(keys, values, strict=True) if v is None]
    if missing:
        raise ValueError(f"{what} row without {', '.join(missing)}")
    return [float(v) for v in values if v is not None]


def _row_to_astrometry(row: dict[str, str], name: str, mjd: float) -> RelativeAstrometry | None:
    """One epoch of one object, or None for an RV-only row."""
    quant_type = (row.get("quant_type") or "").strip().lower()
    if quant_type:
        if quant_type == "rv":
            return None
        if quant_type not in {"radec", "seppa"}:
            raise ValueError(f"quant_type {quant_type!r} is not radec, seppa or rv")
        q1, e1, q2, e2 = _need(row, ("quant1", "quant1_err", "quant2", "quant2_err"), quant_type)
        corr = _number(row.get("quant12_corr")) or 0.0
        form, values = quant_type, (q1, e1, q2, e2, corr)
    elif _number(row.get("raoff")) is not None or _number(row.get("decoff")) is not None:
        ra, ra_e, dec, dec_e = _need(row, ("raoff", "raoff_err", "decoff", "decoff_err"), "raoff/decoff")
        form, values = "radec", (ra, ra_e, dec, dec_e, _number(row.get("radec_corr")) or 0.0)
    elif _number(row.get("sep")) is not None or _number(row.get("pa")) is not None:
        sep, sep_e, pa, pa_e = _need(row, ("sep", "sep_err", "pa", "pa_err"), "sep/pa")
        form, values = "seppa", (sep, sep_e, pa, pa_e, _number(row.get("seppa_corr")) or 0.0)
    elif _number(row.get("rv")) is not None:
        return None
    else:
        raise ValueError("no astrometry (need raoff/decoff, sep/pa or quant1/quant2 with quant_type)")
    a, a_err, b, b_err, corr = values
    if not (a_err > 0 and b_err > 0 and all(math.isfinite(v) for v in values)):
        raise ValueError("errors must be positive and values finite")
    if not -1.0 <= corr <= 1.0:
        raise ValueError(f"correlation {corr} outside [-1, 1]")
    if form == "radec":
        return RelativeAstrometry(
            name, np.array([mjd]), np.array([a]), np.array([b]), radec_covariance([a_err], [b_err], [corr])
        )
    ra, dec, cov = seppa_to_radec([a], [b], [a_err], [b_err], [corr])
    return RelativeAstrometry(name, np.array([mjd]), ra, dec, cov)


def read_orbitize_text(text: str, source: str = "<text>") -> list[RelativeAstrometry]:
    """Parse orbitize-format CSV ``text``; ``source`` names it in error messages."""
    numbered = [
        (i, line)
        for i, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise AstrometryFormatError(f"{source}: no header and no data")
    header_line, header = numbered[0]
    columns = [_column_key(c) for c in next(csv.reader([header]))]
    has_epoch = "epoch" in columns
    date_col = next((c for c in ("date", "date_ut", "epoch_iso", "date_obs") if c in columns), None)
    if not has_epoch and date_col is None:
        raise AstrometryFormatError(f"{source}, line {header_line}: no 'epoch' (MJD or ISO) column")
    parts: dict[str, list[RelativeAstrometry]] = {}
    for lineno, line in numbered[1:]:
        cells = next(csv.reader([line]))
        if len(cells) > len(columns):
            raise AstrometryFormatError(
                f"{source}, line {lineno}: {len(cells)} values for {len(columns)} columns"
            )
        row = dict(zip(columns, cells, strict=False))
        name = (row.get("object") or "1").strip()
        try:
            epoch_text = row.get("epoch") if has_epoch else row.get(date_col or "")
            if not epoch_text or not epoch_text.strip():
                raise ValueError("empty epoch")
            mjd = parse_epoch(epoch_text)
            epoch = _row_to_astrometry(row, name, mjd)
            if epoch is not None and name == "0":
                raise ValueError(
                    "object 0 is the host star in orbitize's convention; "
                    "relative astrometry belongs to objects 1, 2, ..."
                )
        except ValueError as exc:
            raise AstrometryFormatError(f"{source}, line {lineno}: {exc}") from exc
        if epoch is not None:
            parts.setdefault(name, []).append(epoch)
    if not parts:
        raise AstrometryFormatError(f"{source}: no relative astrometry rows")
    return [RelativeAstrometry.concatenate(name, epochs) for name, epochs in parts.items()]


def read_orbitize(path: str | Path) -> list[RelativeAstrometry]:
    """Read every object's relative astrometry from an orbitize-format CSV file (module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AstrometryFormatError(f"{path}: cannot read ({exc})") from exc
    return read_orbitize_text(text, str(path))


def format_orbitize(objects: Iterable[RelativeAstrometry], form: str = "radec") -> str:
    """orbitize CSV text for ``objects``: ``form`` = ``radec`` (raoff/decoff with radec_corr) or
    ``seppa`` (sep/pa with seppa_corr). Values keep full float precision (``repr``)."""
    if form not in {"radec", "seppa"}:
        raise ValueError(f"form must be 'radec' or 'seppa', not {form!r}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if form == "radec":
        writer.writerow(["epoch", "object", "raoff", "raoff_err", "decoff", "decoff_err", "radec_corr"])
    else:
        writer.writerow(["epoch", "object", "sep", "sep_err", "pa", "pa_err", "seppa_corr"])
    for astro in objects:
        if form == "radec":
            cols = (astro.ra, astro.ra_err, astro.dec, astro.dec_err, astro.corr)
        else:
            cols = astro.seppa()
            cols = (cols[0], cols[2], cols[1], cols[3], cols[4])
        for i in range(len(astro)):
            writer.writerow([repr(float(astro.mjd[i])), astro.name, *(repr(float(c[i])) for c in cols)])
    return out.getvalue()


def write_orbitize(path: str | Path, objects: Iterable[RelativeAstrometry], form: str = "radec") -> None:
    """Write ``objects`` to ``path`` in orbitize's CSV format (see :func:`format_orbitize`)."""
    Path(path).write_text(format_orbitize(objects, form), encoding="utf-8")
