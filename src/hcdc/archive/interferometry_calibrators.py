"""Calibrator vetting: a calibrator catalogue in the JSDC v2 columns, a bad-calibrator list,
and the vetting report of the calibrators an OIFITS file uses.

Tables (migration ``0009_survey``):

* ``oi_calibrators``: one star of an imported calibrator catalogue, in JSDC v2 columns
  (VizieR ``II/346/jsdc_v2``; ../shared/reference/interferometry.md §3): ``Name``,
  ``RAJ2000``, ``DEJ2000``, ``LDD``, ``e_LDD``, ``LDD_chi2``, ``UDDB`` ... ``UDDN`` [mas],
  ``MainId_SIMBAD``, ``SpType_SIMBAD``, ``ObjTypes_SIMBAD``, ``CalFlag``;
* ``oi_bad_calibrators``: the bad-calibrator list (JMMC BadCal's ``id, ra, dec, name`` and
  an optional ``reason``).

A re-import of the same star (same normalised name) replaces its row.

Which calibrators a file uses (:func:`calibrators_of`): the ``ESO PRO JSDC CALn`` keywords
the MATISSE pipeline writes (``"<name> --- <UT time>"``), and, when the file *is* a
calibrator (``ESO PRO SCIENCE`` / ``HIERARCH PRO SCIENCE`` false: MATISSE's calibrator
products, or a file validated with ``hcdc oi validate --calibrator``), its OI_TARGET rows;
only those have their own V²/T3 in the file, so only they get the residual test.

Flags per calibrator (:func:`vet_file`): ``be_star`` (SIMBAD object types Be*/Em*/Ae*, which
JSDC's CalFlag does not cover), ``bad_list``, ``binary_calflag`` (CalFlag bit 2: SB9 or WDS
companion < 2″), ``calflag_chi2`` (bit 1), ``calflag_otype`` (bit 4), ``binary_residuals``
(closure phases against centro-symmetry, diameter against a uniform disk:
:func:`hcdc.science.interferometry.vetting.residual_test`), ``diameter_inconsistent``,
``not_in_catalogue``. Verdict: ``reject`` for a Be star, a bad-list member or a binary;
``suspect`` for the other flags; ``ok`` otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from sqlalchemy import Connection, DateTime, Float, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.models import Base, JSONType, utcnow

#: JSDC v2 UD-diameter columns and the central wavelength of their band [m].
UDD_BANDS: dict[str, float] = {
    "UDDB": 0.44e-6, "UDDV": 0.55e-6, "UDDR": 0.64e-6, "UDDI": 0.79e-6, "UDDJ": 1.25e-6,
    "UDDH": 1.65e-6, "UDDK": 2.2e-6, "UDDL": 3.5e-6, "UDDM": 4.8e-6, "UDDN": 10.5e-6,
}  # fmt: skip
#: SIMBAD object types of Be / emission-line stars (JSDC's CalFlag bit 4 list has no Be*).
EMISSION_OTYPES = frozenset({"Be*", "Be?", "Em*", "Ae*", "Ae?"})
#: Sky match radius between an OI_TARGET position and a catalogue / bad-list position [arcsec].
MATCH_RADIUS_ARCSEC = 5.0
REJECT_FLAGS = frozenset({"be_star", "bad_list", "binary_calflag", "binary_residuals"})
_JSDC_KEY = re.compile(r"^ESO PRO JSDC CAL\d+$")


class CalibratorError(ValueError):
    """A calibrator table or file that cannot be used (the message names it and why)."""


class OiCalibrator(Base):
    """One star of an imported calibrator catalogue (JSDC v2 columns; diameters in mas)."""

    __tablename__ = "oi_calibrators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)  # JSDC Name
    name_key: Mapped[str] = mapped_column(String(128), nullable=False)  # normalised, see name_key()
    ra: Mapped[float] = mapped_column(Float, nullable=False)  # deg (J2000)
    dec: Mapped[float] = mapped_column(Float, nullable=False)  # deg
    ldd: Mapped[float | None] = mapped_column(Float)  # mas
    e_ldd: Mapped[float | None] = mapped_column(Float)  # mas
    ldd_chi2: Mapped[float | None] = mapped_column(Float)
    udd: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # {"UDDK": mas, ...}
    main_id_simbad: Mapped[str | None] = mapped_column(String(128))
    sptype_simbad: Mapped[str | None] = mapped_column(String(64))
    objtypes_simbad: Mapped[str | None] = mapped_column(Text)
    calflag: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # imported file name
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("name_key", name="uq_oi_calibrators_name_key"),)


class OiBadCalibrator(Base):
    """One entry of the bad-calibrator list."""

    __tablename__ = "oi_bad_calibrators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    name_key: Mapped[str] = mapped_column(String(128), nullable=False)
    ra: Mapped[float | None] = mapped_column(Float)  # deg
    dec: Mapped[float | None] = mapped_column(Float)  # deg
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("name_key", name="uq_oi_bad_calibrators_name_key"),)


# --------------------------------------------------------------------------------------------
# names, coordinates, tables


def name_key(name: str) -> str:
    """A star name normalised for matching: SIMBAD's ``*`` / ``V*`` prefixes dropped, case,
    underscores and repeated spaces ignored (``"* 106 Vir"`` = ``"106_vir"``, ``"HD  33162"``
    = ``"hd 33162"``)."""
    text = re.sub(r"[\s_]+", " ", name).strip().lower()
    return re.sub(r"^(v\*|\*\*|\*)\s+", "", text)


def _angle(text: str, hours: bool, where: str) -> float:
    """Degrees from degrees (``"83.63"``) or sexagesimal (``"05 34 31.9"``, ``"+22:00:52"``,
    hours for RA)."""
    from astropy.coordinates import Angle

    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        angle = Angle(value.replace(":", " "), unit="hourangle" if hours else "deg")
    except ValueError as exc:
        raise CalibratorError(f"{where}: {value!r} is not an angle ({exc})") from None
    return float(angle.deg)


def _number(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if np.ma.is_masked(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CalibratorError(f"{where}: {value!r} is not a number") from None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or np.ma.is_masked(value):
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.strip() or None


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header line, comma-separated; ``#`` lines are comments) or VOTable
    (``.xml`` / ``.vot`` / ``.votable``) file, as column -> value dictionaries."""
    path = Path(path)
    if not path.is_file():
        raise CalibratorError(f"{path}: no such file")
    if path.suffix.lower() in (".xml", ".vot", ".votable"):
        from astropy.io.votable import parse_single_table

        try:
            table = parse_single_table(str(path)).to_table()
        except Exception as exc:  # astropy raises many kinds for a broken VOTable
            raise CalibratorError(f"{path}: not a readable VOTable ({type(exc).__name__}: {exc})") from None
        return [{name: row[name] for name in table.colnames} for row in table]
    with path.open(newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if not line.lstrip().startswith("#") and line.strip()]
    reader = csv.DictReader(lines)
    if not reader.fieldnames:
        raise CalibratorError(f"{path}: empty table (a header line is needed)")
    return [{k.strip(): v for k, v in row.items() if k} for row in reader]


def _need(rows: list[dict[str, Any]], columns: tuple[str, ...], path: Path) -> None:
    present = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in present]
    if missing:
        raise CalibratorError(f"{path}: missing column(s) {', '.join(missing)} (JSDC v2 names expected)")


def import_catalogue(conn: Connection, path: str | Path) -> int:
    """Import (insert or replace by name) the calibrators of a JSDC v2-column table; returns
    how many rows were read. Whole or nothing (the caller's transaction)."""
    path = Path(path)
    rows = read_table(path)
    if not rows:
        raise CalibratorError(f"{path}: no rows")
    _need(rows, ("Name", "RAJ2000", "DEJ2000", "LDD"), path)
    records = []
    for i, row in enumerate(rows, start=1):
        where = f"{path.name} row {i}"
        name = _text(row["Name"])
        if not name:
            raise CalibratorError(f"{where}: empty Name")
        calflag = _number(row.get("CalFlag"), f"{where} CalFlag")
        records.append(
            {
                "name": name,
                "name_key": name_key(name),
                "ra": _angle(str(row["RAJ2000"]), True, f"{where} RAJ2000"),
                "dec": _angle(str(row["DEJ2000"]), False, f"{where} DEJ2000"),
                "ldd": _number(row["LDD"], f"{where} LDD"),
                "e_ldd": _number(row.get("e_LDD"), f"{where} e_LDD"),
                "ldd_chi2": _number(row.get("LDD_chi2"), f"{where} LDD_chi2"),
                "udd": {
                    band: value
                    for band in UDD_BANDS
                    if (value := _number(row.get(band), f"{where} {band}")) is not None
                },
                "main_id_simbad": _text(row.get("MainId_SIMBAD")),
                "sptype_simbad": _text(row.get("SpType_SIMBAD")),
                "objtypes_simbad": _text(row.get("ObjTypes_SIMBAD")),
                "calflag": int(calflag) if calflag is not None else None,
                "source": path.name,
            }
        )
    _replace(conn, OiCalibrator, records)
    return len(records)


def import_bad_list(conn: Connection, path: str | Path) -> int:
    """Import (insert or replace by name) a bad-calibrator list: columns ``name`` and
    optionally ``ra``, ``dec`` (deg or sexagesimal) and ``reason``; returns the row count."""
    path = Path(path)
    rows = read_table(path)
    if not rows:
        raise CalibratorError(f"{path}: no rows")
    _need(rows, ("name",), path)
    records = []
    for i, row in enumerate(rows, start=1):
        where = f"{path.name} row {i}"
        name = _text(row["name"])
        if not name:
            raise CalibratorError(f"{where}: empty name")
        ra, dec = _text(row.get("ra")), _text(row.get("dec"))
        records.append(
            {
                "name": name,
                "name_key": name_key(name),
                "ra": _angle(ra, True, f"{where} ra") if ra else None,
                "dec": _angle(dec, False, f"{where} dec") if dec else None,
                "reason": _text(row.get("reason")),
                "source": path.name,
            }
        )
    _replace(conn, OiBadCalibrator, records)
    return len(records)


def _replace(conn: Connection, model: type[Base], records: list[dict[str, Any]]) -> None:
    keys = {r["name_key"]: r for r in records}  # a name twice in one table: the last row wins
    table = model.__table__
    for chunk_start in range(0, len(keys), 500):
        chunk = list(keys)[chunk_start : chunk_start + 500]
        conn.execute(delete(table).where(table.c.name_key.in_(chunk)))
    conn.execute(table.insert(), [{**r, "imported_at": utcnow()} for r in keys.values()])


def list_calibrators(conn: Connection) -> list[dict[str, Any]]:
    """The imported calibrators (catalogue order by name)."""
    rows = conn.execute(select(OiCalibrator).order_by(OiCalibrator.name_key)).mappings()
    return [{k: v for k, v in row.items() if k not in ("name_key", "imported_at")} for row in rows]


# --------------------------------------------------------------------------------------------
# which calibrators a file uses


@dataclass
class UsedCalibrator:
    """A calibrator named by a file: ``name``, where it was found, its position from OI_TARGET
    [deg] (None from a header), and whether the file holds its own observables."""

    name: str
    origin: str
    ra: float | None = None
    dec: float | None = None
    own_data: bool = False


def _is_calibrator_file(header: fits.Header) -> bool:
    for key in ("HIERARCH PRO SCIENCE", "ESO PRO SCIENCE"):
        if key in header:
            value = header[key]
            return value is False or (isinstance(value, str) and value.strip().upper() in ("F", "FALSE"))
    return False


def calibrators_of(path: str | Path, *, as_calibrator: bool = False) -> list[UsedCalibrator]:
    """The calibrators ``path`` uses (see the module docstring); ``as_calibrator`` treats the
    file's targets as calibrators whatever its header says."""
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            header = hdul[0].header
            found: list[UsedCalibrator] = []
            for key in header:
                if _JSDC_KEY.match(key):
                    name = str(header[key]).split("---")[0].strip()
                    if name and name_key(name) not in {name_key(c.name) for c in found}:
                        found.append(UsedCalibrator(name, f"header {key}"))
            if as_calibrator or _is_calibrator_file(header):
                origin = "OI_TARGET (a calibrator file)"
                for hdu in hdul[1:]:
                    if hdu.header.get("EXTNAME", "").strip() == "OI_TARGET":
                        for row in hdu.data:
                            found.append(
                                UsedCalibrator(
                                    str(row["TARGET"]).strip(),
                                    origin,
                                    float(row["RAEP0"]),
                                    float(row["DECEP0"]),
                                    own_data=True,
                                )
                            )
    except OSError as exc:
        raise CalibratorError(f"{path}: not a readable FITS file ({exc})") from None
    except KeyError as exc:
        raise CalibratorError(f"{path}: OI_TARGET lacks column {exc}") from None
    return found


# --------------------------------------------------------------------------------------------
# vetting


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance [arcsec] between two positions [deg] (haversine)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


def _find(conn: Connection, model: type[Base], used: UsedCalibrator) -> tuple[Any | None, str]:
    """The row of ``model`` for ``used``: by normalised name, else by position (within
    MATCH_RADIUS_ARCSEC) when the file gives one; and how it matched."""
    table = model.__table__
    row = conn.execute(select(table).where(table.c.name_key == name_key(used.name))).first()
    if row is not None:
        return row, "name"
    if used.ra is None or used.dec is None:
        return None, ""
    box = MATCH_RADIUS_ARCSEC / 3600.0
    cos_dec = max(math.cos(math.radians(used.dec)), 1e-6)
    candidates = conn.execute(
        select(table).where(
            table.c.dec.between(used.dec - box, used.dec + box),
            table.c.ra.between(used.ra - box / cos_dec, used.ra + box / cos_dec),
        )
    ).all()
    close = [(r, _separation_arcsec(used.ra, used.dec, r.ra, r.dec)) for r in candidates if r.ra is not None]
    close = [c for c in close if c[1] <= MATCH_RADIUS_ARCSEC]
    if not close:
        return None, ""
    best = min(close, key=lambda c: c[1])
    return best[0], f'position ({best[1]:.2f}")'


def otypes(text: str | None) -> set[str]:
    """SIMBAD object types of a JSDC ``ObjTypes_SIMBAD`` value (``",*,Be*,IR,"``)."""
    return {t for t in re.split(r"[,\s|]+", text or "") if t}


def band_udd(calibrator: Any, wavelength_m: float | None) -> tuple[float | None, str]:
    """The catalogue UD diameter [mas] for data at ``wavelength_m`` (the band whose centre is
    nearest in log λ) and its column; the LDD when that band has none."""
    udd = calibrator.udd or {}
    if wavelength_m and udd:
        band = min(udd, key=lambda b: abs(math.log(UDD_BANDS[b] / wavelength_m)))
        return float(udd[band]), band
    return (float(calibrator.ldd), "LDD") if calibrator.ldd else (None, "")


def catalogue_diameter(
    conn: Connection, target: str, ra: float | None, dec: float | None, wavelength_m: float | None
) -> dict[str, Any] | None:
    """The imported catalogue's diameter for a science target (to start a model fit from):
    matched by normalised name, else within MATCH_RADIUS_ARCSEC of (``ra``, ``dec``) [deg];
    the UD diameter of the band nearest ``wavelength_m`` [m], else the LDD [mas]. None when the
    star is not in the catalogue or has no diameter. Returns ``{"name", "match", "theta_mas",
    "column"}``."""
    row, how = _find(conn, OiCalibrator, UsedCalibrator(target, "target", ra, dec))
    if row is None:
        return None
    theta, column = band_udd(row, wavelength_m)
    if theta is None:
        return None
    return {"name": row.name, "match": how, "theta_mas": theta, "column": column}


def vet_file(conn: Connection, path: str | Path, *, as_calibrator: bool = False) -> dict[str, Any]:
    """The vetting report of the calibrators of the OIFITS file ``path`` (see the module
    docstring): one entry per calibrator with its flags, verdict and residual test."""
    from hcdc.instruments.oifits_data import read_observables
    from hcdc.science.interferometry.fitting import FitError
    from hcdc.science.interferometry.vetting import residual_test

    path = Path(path)
    entries = []
    for used in calibrators_of(path, as_calibrator=as_calibrator):
        flags: list[str] = []
        entry: dict[str, Any] = {"name": used.name, "origin": used.origin}
        cal, how = _find(conn, OiCalibrator, used)
        bad, bad_how = _find(conn, OiBadCalibrator, used)
        if bad is not None:
            flags.append("bad_list")
            entry["bad_list"] = {"name": bad.name, "match": bad_how, "reason": bad.reason}
        if cal is None:
            flags.append("not_in_catalogue")
        else:
            entry["catalogue"] = {
                "name": cal.name, "match": how, "ldd_mas": cal.ldd, "e_ldd_mas": cal.e_ldd,
                "calflag": cal.calflag, "objtypes_simbad": cal.objtypes_simbad, "source": cal.source,
            }  # fmt: skip
            if otypes(cal.objtypes_simbad) & EMISSION_OTYPES:
                flags.append("be_star")
            calflag = cal.calflag or 0
            for bit, flag in ((1, "calflag_chi2"), (2, "binary_calflag"), (4, "calflag_otype")):
                if calflag & bit:
                    flags.append(flag)
        if used.own_data:
            try:
                data = read_observables(path, target=used.name)
                wavelength = float(np.median(data.wavelength)) if data.wavelength.size else None
                theta, band = band_udd(cal, wavelength) if cal is not None else (None, "")
                e_theta = (
                    cal.e_ldd * theta / cal.ldd
                    if cal is not None and theta and cal.e_ldd and cal.ldd
                    else None
                )
                test = residual_test(data, theta, e_theta)
                entry["residuals"] = {**test.as_dict(), "catalogue_column": band or None}
                if test.binary_suspected:
                    flags.append("binary_residuals")
                if test.diameter_inconsistent:
                    flags.append("diameter_inconsistent")
            except (FitError, ValueError) as exc:
                entry["residuals"] = {"error": str(exc)}
        entry["flags"] = flags
        entry["verdict"] = "reject" if REJECT_FLAGS & set(flags) else ("suspect" if flags else "ok")
        entries.append(entry)
    order = {"ok": 0, "suspect": 1, "reject": 2}
    verdict = max((e["verdict"] for e in entries), key=order.__getitem__, default="no calibrator found")
    return {"file": str(path), "verdict": verdict, "calibrators": entries}
