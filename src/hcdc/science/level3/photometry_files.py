"""Reading photometry files for colour-magnitude diagrams: the reference tables of
../shared/data/level3/cmd (UltracoolSheet field dwarfs, species' young companions) and a user's
photometry of detections.

Band names are reduced to short labels by :func:`canonical_band`: the SPHERE/IRDIS dual-band
filters keep their own names (``H2``, ``H3``, ``K1``, ``K2``, ``J2``, ``J3``, ``Y2``, ``Y3``);
broad bands of 2MASS, MKO and the AO cameras become ``J``, ``H``, ``K`` (Ks, K' and K together:
their differences, <~0.1 mag for ultracool dwarfs, are below the spread of the diagrams).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from hcdc.science.level3.cmd import AbsolutePhotometry, absolute_photometry

_IRDIS_DUAL = re.compile(r"IRDIS_D_([YJHK])(\d\d)_(\d)$", re.IGNORECASE)
_BROAD = {"J": "J", "H": "H", "K": "K", "KS": "K", "KP": "K", "K'": "K"}
_BROAD_CAMERAS = (
    "2MASS/2MASS.",
    "MKO/NSFCam.",
    "Paranal/NACO.",
    "Keck/NIRC2.",
    "Subaru/CIAO.",
    "Paranal/SPHERE.IRDIS_B_",
    "CFHT/Wircam.",
    "Gemini/NIRI.",
)


class PhotometryFormatError(ValueError):
    """A photometry file that cannot be read; the message names the file, line and reason."""


def canonical_band(name: str) -> str | None:
    """Short band label of a filter name (``Paranal/SPHERE.IRDIS_D_H23_2`` -> ``H2``,
    ``2MASS/2MASS.Ks`` -> ``K``, ``Ks`` -> ``K``, ``h2`` -> ``H2``), or None when not a band of
    the diagrams."""
    text = name.strip()
    match = _IRDIS_DUAL.search(text)
    if match:
        # species/SVO name the filter of a pair by its number: D_H23_2 is H2, D_K12_1 is K1
        band, pair, number = match.group(1).upper(), match.group(2), match.group(3)
        return f"{band}{number}" if number in pair else None
    if re.fullmatch(r"[YJHK][1-3]", text, re.IGNORECASE):
        return text.upper()
    for prefix in _BROAD_CAMERAS:
        if text.startswith(prefix):
            rest = text[len(prefix) :].split("-")[0]
            return _BROAD.get(rest.upper())
    return _BROAD.get(text.upper())


def _float(value: str | None) -> float | None:
    if value is None or value.strip() in {"", "nan", "--"}:
        return None
    return float(value)


def _open_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(line for line in fh if not line.lstrip().startswith("#")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PhotometryFormatError(f"{path}: cannot read ({exc})") from exc


def read_ultracoolsheet(path: str | Path) -> list[AbsolutePhotometry]:
    """Field (and young) ultracool dwarfs with a parallax from the UltracoolSheet extract
    (``ucs_cold_objects_absmag.csv``): J, H, K in MKO where measured, else 2MASS (Ks).
    Absolute magnitudes are recomputed from the apparent ones and the parallax, with errors."""
    path = Path(path)
    rows = _open_rows(path)
    need = {"name", "plx_mas", "plx_err_mas", "J_MKO", "H_MKO", "K_MKO", "Ks_2MASS"}
    if rows and not need <= set(rows[0]):
        raise PhotometryFormatError(
            f"{path}: not an UltracoolSheet extract (missing {sorted(need - set(rows[0]))})"
        )
    out = []
    for lineno, row in enumerate(rows, start=2):
        try:
            plx, plx_err = _float(row["plx_mas"]), _float(row["plx_err_mas"]) or 0.0
            if plx is None or plx <= 0:
                continue
            apparent: dict[str, tuple[float, float]] = {}
            for band, columns in (
                ("J", ("J_MKO", "J_2MASS")),
                ("H", ("H_MKO", "H_2MASS")),
                ("K", ("K_MKO", "Ks_2MASS")),
            ):
                for col in columns:
                    mag = _float(row.get(col))
                    if mag is not None:
                        apparent[band] = (mag, _float(row.get(f"e_{col}")) or 0.0)
                        break
        except ValueError as exc:
            raise PhotometryFormatError(f"{path}, line {lineno}: {exc}") from exc
        if apparent:
            spt = row.get("spt_nir") or row.get("spt_opt") or ""
            kind = (
                "field dwarf" if row.get("age_category", "").strip() in {"Field", ""} else "young/other dwarf"
            )
            out.append(absolute_photometry(row["name"], apparent, plx, plx_err, kind=kind, spectral_type=spt))
    return out


def read_species_companions(path: str | Path) -> list[AbsolutePhotometry]:
    """Young directly imaged companions from ``species_companions_absmag_long.csv`` (one row per
    companion, filter and measurement); several measurements of one band are averaged with
    inverse-variance weights."""
    path = Path(path)
    rows = _open_rows(path)
    need = {"companion", "plx_mas", "plx_err_mas", "filter", "app_mag", "e_app_mag"}
    if rows and not need <= set(rows[0]):
        raise PhotometryFormatError(
            f"{path}: not a species companion table (missing {sorted(need - set(rows[0]))})"
        )
    grouped: dict[str, dict] = {}
    for lineno, row in enumerate(rows, start=2):
        band = canonical_band(row["filter"])
        try:
            mag, err = _float(row["app_mag"]), _float(row["e_app_mag"])
            plx, plx_err = _float(row["plx_mas"]), _float(row["plx_err_mas"]) or 0.0
        except ValueError as exc:
            raise PhotometryFormatError(f"{path}, line {lineno}: {exc}") from exc
        if band is None or mag is None or plx is None or plx <= 0:
            continue
        entry = grouped.setdefault(row["companion"], {"plx": (plx, plx_err), "bands": {}})
        entry["bands"].setdefault(band, []).append((mag, err if err and err > 0 else 0.1))
    out = []
    for name, entry in grouped.items():
        apparent = {}
        for band, values in entry["bands"].items():
            weights = [1.0 / e**2 for _, e in values]
            mean = sum(w * m for w, (m, _) in zip(weights, values, strict=True)) / sum(weights)
            apparent[band] = (mean, math.sqrt(1.0 / sum(weights)))
        out.append(absolute_photometry(name, apparent, *entry["plx"], kind="young companion"))
    return out


def read_photometry_csv(
    path: str | Path, parallax: float | None = None, parallax_err: float = 0.0
) -> list[AbsolutePhotometry]:
    """A user's photometry, one row per object and band: columns ``object``, ``band`` (or
    ``filter``), ``mag``, ``mag_err``, and optionally ``parallax`` and ``parallax_err`` [mas]
    (else the ``parallax`` argument)."""
    path = Path(path)
    rows = _open_rows(path)
    if not rows:
        raise PhotometryFormatError(f"{path}: no rows")
    columns = {c.strip().lower() for c in rows[0] if c}
    band_col = "band" if "band" in columns else "filter" if "filter" in columns else None
    if not {"object", "mag", "mag_err"} <= columns or band_col is None:
        raise PhotometryFormatError(f"{path}: need columns object, band (or filter), mag, mag_err")
    objects: dict[str, dict] = {}
    for lineno, raw in enumerate(rows, start=2):
        row = {k.strip().lower(): (v or "") for k, v in raw.items() if k}
        try:
            band = canonical_band(row[band_col])
            if band is None:
                raise ValueError(f"unknown band {row[band_col]!r} (e.g. H2, H3, K1, K2, J, H, K)")
            mag, err = _float(row["mag"]), _float(row["mag_err"])
            if mag is None or err is None or not err > 0:
                raise ValueError("mag and a positive mag_err are required")
            plx = _float(row.get("parallax")) or parallax
            plx_err = _float(row.get("parallax_err")) or parallax_err
            if plx is None or not plx > 0:
                raise ValueError("no parallax (give a parallax column or --parallax)")
        except ValueError as exc:
            raise PhotometryFormatError(f"{path}, line {lineno}: {exc}") from exc
        entry = objects.setdefault(row["object"].strip(), {"plx": (plx, plx_err), "bands": {}})
        if entry["plx"] != (plx, plx_err):
            raise PhotometryFormatError(
                f"{path}, line {lineno}: object {row['object']!r} with two parallaxes"
            )
        entry["bands"][band] = (mag, err)
    return [absolute_photometry(name, e["bands"], *e["plx"], kind="detection") for name, e in objects.items()]
