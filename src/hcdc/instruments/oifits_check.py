"""OIFITS validation report with the rule names and severities of JMMC oitools' checker.

OiDB runs oitools' ``OIFitsChecker`` on every upload and shows the report ("N SEVERE / N
WARNING"); SEVERE does not block L1/L2 (see ../shared/reference/interferometry.md section
2.4). This module re-implements the rules that can be checked from the tables with astropy,
under oitools' names (``model/Rule.java``), and applies the **JMMC severity profile**
(``profile_JMMC.conf``): every failure is SEVERE (oitools' ERROR) unless a line of the profile
lowers it, the most specific line (rule, table, member, standard) winning.

Rules implemented: the table presence rules (``OIFITS_OI_TARGET_EXIST``,
``OIFITS_OI_WAVELENGTH_EXIST``, ``OIFITS_OIDATA``, ``OIFITS_OI_ARRAY_EXIST_V2``,
``OIFITS_TABLE_NOT_V2``, ``UNKNOWN_TABLE``), ``GENERIC_KEYWORD_MANDATORY``,
``GENERIC_COL_MANDATORY``, ``GENERIC_COL_UNIT`` / ``GENERIC_COL_UNIT_EXIST``,
``GENERIC_KEYWORD_VAL_ACCEPTED_INT`` (OI_REVN), ``GENERIC_MJD_RANGE``,
``GENERIC_DATE_OBS_STANDARD``, ``GENERIC_DATE_OBS_RANGE``, the references (``ARRNAME_REF``,
``INSNAME_REF``, ``ARRNAME_UNIQ``, ``INSNAME_UNIQ``), OI_TARGET (``OI_TARGET_TARGET_EXIST``,
``OI_TARGET_TARGET``, ``OI_TARGET_TARGET_UNIQ``, ``OI_TARGET_TARGETID_MIN``,
``OI_TARGET_TARGETID_UNIQ``, ``OI_TARGET_COORD``), OI_ARRAY (``OI_ARRAY_ARRNAME``,
``OI_ARRAY_STA_NAME``, ``OI_ARRAY_STA_INDEX_MIN``, ``OI_ARRAY_STA_INDEX_UNIQ``,
``OI_ARRAY_XYZ``) and OI_WAVELENGTH (``OI_WAVELENGTH_INSNAME``, ``OI_WAVELENGTH_EFF_WAVE``).
Not implemented (yet): column formats and dimensions, accepted string values, OI_CORR /
OI_INSPOL index rules, and oitools' FIX rules (hcdc never rewrites a file while checking it).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from astropy.io import fits

SEVERE, WARNING, INFO = "SEVERE", "WARNING", "INFO"
PROFILE = "JMMC"

# profile_JMMC.conf: (rule, extname, member prefix, standard) -> severity; None matches anything.
# Default: SEVERE (oitools' ERROR). The most specific matching line wins.
_JMMC_PROFILE: tuple[tuple[str | None, str | None, str | None, int | None, str], ...] = (
    ("UNKNOWN_COLUMN", None, None, None, WARNING),
    ("UNKNOWN_TABLE", None, None, None, WARNING),
    ("GENERIC_COL_VAL_POSITIVE", None, None, None, INFO),
    ("GENERIC_DATE_OBS_STANDARD", None, None, None, WARNING),
    ("MAIN_HEADER_TYPE_MULTI", None, None, None, INFO),
    ("GENERIC_DATE_OBS_RANGE", None, None, None, WARNING),
    ("OI_ARRAY_XYZ", None, None, None, WARNING),
    ("GENERIC_MJD_RANGE", None, None, None, WARNING),
    ("OI_INSPOL_MJD_RANGE", None, None, None, WARNING),
    ("OI_TARGET_COORD", None, None, None, WARNING),
    (None, "OI_CORR", None, None, INFO),
    ("GENERIC_COL_VAL_ACCEPTED_STR", "OI_TARGET", None, None, WARNING),
    ("GENERIC_COL_VAL_ACCEPTED_STR", "OI_TARGET", "CATEGORY", None, SEVERE),
    ("GENERIC_KEYWORD_MANDATORY", None, "INSMODE", None, WARNING),
    ("GENERIC_COL_MANDATORY", "OI_ARRAY", "FOV", None, WARNING),
    ("GENERIC_COL_UNIT", None, None, None, INFO),
    ("GENERIC_COL_UNIT", "OI_VIS", "VISAMP", None, SEVERE),
    ("GENERIC_COL_UNIT", "OI_VIS", "RVIS", None, SEVERE),
    ("GENERIC_COL_UNIT", "OI_VIS", "IVIS", None, SEVERE),
    ("GENERIC_COL_UNIT", "OI_FLUX", "FLUX", None, SEVERE),
    ("GENERIC_COL_UNIT_EXIST", None, None, None, INFO),
    ("GENERIC_COL_UNIT_EXIST", "OI_VIS", "VISAMP", None, SEVERE),
    ("GENERIC_COL_UNIT_EXIST", "OI_VIS", "RVIS", None, SEVERE),
    ("GENERIC_COL_UNIT_EXIST", "OI_VIS", "IVIS", None, SEVERE),
    ("GENERIC_COL_UNIT_EXIST", "OI_FLUX", "FLUX", None, SEVERE),
    ("GENERIC_KEYWORD_VAL_ACCEPTED_INT", None, "OI_REV", 1, INFO),
    ("GENERIC_KEYWORD_VAL_ACCEPTED_INT", None, "OI_REV", 2, WARNING),
)


def jmmc_severity(rule: str, extname: str | None, member: str | None, standard: int) -> str:
    """Severity of a failure of ``rule`` on ``extname.member`` of an OIFITS ``standard`` (1 or 2)
    under oitools' JMMC profile (member entries match by prefix, like ``FOV*``)."""
    best: tuple[int, str] | None = None
    for p_rule, p_ext, p_member, p_std, severity in _JMMC_PROFILE:
        if p_rule is not None and p_rule != rule:
            continue
        if p_ext is not None and p_ext != extname:
            continue
        if p_member is not None and not (member or "").startswith(p_member):
            continue
        if p_std is not None and p_std != standard:
            continue
        score = sum(x is not None for x in (p_rule, p_ext, p_member, p_std))
        if best is None or score >= best[0]:
            best = (score, severity)
    return best[1] if best is not None else SEVERE


@dataclass
class Failure:
    """One rule failure: oitools' rule name, the JMMC severity, where, and a message."""

    rule: str
    severity: str
    extname: str | None
    extver: int | None
    member: str | None
    message: str


# Mandatory columns and keywords (OIFITS 1: Pauls et al. 2005; OIFITS 2: Duvert et al. 2017).
_COLUMNS_V1: dict[str, tuple[str, ...]] = {
    "OI_TARGET": (
        "TARGET_ID",
        "TARGET",
        "RAEP0",
        "DECEP0",
        "EQUINOX",
        "RA_ERR",
        "DEC_ERR",
        "SYSVEL",
        "VELTYP",
        "VELDEF",
        "PMRA",
        "PMDEC",
        "PMRA_ERR",
        "PMDEC_ERR",
        "PARALLAX",
        "PARA_ERR",
        "SPECTYP",
    ),
    "OI_ARRAY": ("TEL_NAME", "STA_NAME", "STA_INDEX", "DIAMETER", "STAXYZ"),
    "OI_WAVELENGTH": ("EFF_WAVE", "EFF_BAND"),
    "OI_VIS": (
        "TARGET_ID",
        "TIME",
        "MJD",
        "INT_TIME",
        "VISAMP",
        "VISAMPERR",
        "VISPHI",
        "VISPHIERR",
        "UCOORD",
        "VCOORD",
        "STA_INDEX",
        "FLAG",
    ),
    "OI_VIS2": (
        "TARGET_ID",
        "TIME",
        "MJD",
        "INT_TIME",
        "VIS2DATA",
        "VIS2ERR",
        "UCOORD",
        "VCOORD",
        "STA_INDEX",
        "FLAG",
    ),
    "OI_T3": (
        "TARGET_ID",
        "TIME",
        "MJD",
        "INT_TIME",
        "T3AMP",
        "T3AMPERR",
        "T3PHI",
        "T3PHIERR",
        "U1COORD",
        "V1COORD",
        "U2COORD",
        "V2COORD",
        "STA_INDEX",
        "FLAG",
    ),
}
_COLUMNS_V2_EXTRA: dict[str, tuple[str, ...]] = {
    "OI_ARRAY": ("FOV", "FOVTYPE"),
    "OI_FLUX": ("TARGET_ID", "MJD", "INT_TIME", "FLUXDATA", "FLUXERR", "FLAG"),
}
_KEYWORDS_V1: dict[str, tuple[str, ...]] = {
    "OI_TARGET": ("OI_REVN",),
    "OI_ARRAY": ("OI_REVN", "ARRNAME", "FRAME", "ARRAYX", "ARRAYY", "ARRAYZ"),
    "OI_WAVELENGTH": ("OI_REVN", "INSNAME"),
    "OI_VIS": ("OI_REVN", "DATE-OBS", "INSNAME"),
    "OI_VIS2": ("OI_REVN", "DATE-OBS", "INSNAME"),
    "OI_T3": ("OI_REVN", "DATE-OBS", "INSNAME"),
}
_KEYWORDS_V2_EXTRA: dict[str, tuple[str, ...]] = {
    "OI_VIS": ("ARRNAME",),
    "OI_VIS2": ("ARRNAME",),
    "OI_T3": ("ARRNAME",),
    "OI_FLUX": ("OI_REVN", "DATE-OBS", "INSNAME"),
}
#: OIFITS 2 primary header keywords checked (the ones the real files tell apart).
_PRIMARY_V2 = ("INSMODE",)
#: Expected units (OIFITS standard), checked where the column exists; VISAMP / FLUX units
#: depend on AMPTYP / CALSTAT and are left out.
_UNITS: dict[str, str] = {
    "RAEP0": "deg",
    "DECEP0": "deg",
    "EQUINOX": "yr",
    "RA_ERR": "deg",
    "DEC_ERR": "deg",
    "SYSVEL": "m/s",
    "PMRA": "deg/yr",
    "PMDEC": "deg/yr",
    "PMRA_ERR": "deg/yr",
    "PMDEC_ERR": "deg/yr",
    "PARALLAX": "deg",
    "PARA_ERR": "deg",
    "DIAMETER": "m",
    "STAXYZ": "m",
    "FOV": "arcsec",
    "EFF_WAVE": "m",
    "EFF_BAND": "m",
    "TIME": "s",
    "MJD": "day",
    "INT_TIME": "s",
    "VISPHI": "deg",
    "VISPHIERR": "deg",
    "T3PHI": "deg",
    "T3PHIERR": "deg",
    "UCOORD": "m",
    "VCOORD": "m",
    "U1COORD": "m",
    "V1COORD": "m",
    "U2COORD": "m",
    "V2COORD": "m",
}
_STANDARD_TABLES = frozenset(
    {
        "OI_TARGET",
        "OI_ARRAY",
        "OI_WAVELENGTH",
        "OI_VIS",
        "OI_VIS2",
        "OI_T3",
        "OI_FLUX",
        "OI_CORR",
        "OI_INSPOL",
    }
)
_V2_ONLY = frozenset({"OI_FLUX", "OI_CORR", "OI_INSPOL"})
_DATA_TABLES = ("OI_VIS", "OI_VIS2", "OI_T3")
# 1933-01-01 and 2150-12-31 (oitools' "normal" range for MJD and DATE-OBS)
_MJD_RANGE = (27028.0, 91614.0)
_DATE_OBS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_EARTH_RADIUS_RANGE = (6.30e6, 6.45e6)  # m, |ARRAYX/Y/Z| of a site on Earth
_EFF_WAVE_RANGE = (0.1e-6, 20.0e-6)  # m


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


class _Report:
    def __init__(self, standard: int) -> None:
        self.standard = standard
        self.failures: list[Failure] = []

    def add(
        self, rule: str, hdu: fits.hdu.base.ExtensionHDU | None, member: str | None, message: str
    ) -> None:
        extname = _text(hdu.header.get("EXTNAME", "")) or None if hdu is not None else None
        extver = hdu.header.get("EXTVER") if hdu is not None else None
        severity = jmmc_severity(rule, extname, member, self.standard)
        self.failures.append(Failure(rule, severity, extname, extver, member, message))


def check_oifits(hdul: fits.HDUList) -> dict[str, Any]:
    """The validation report of an open OIFITS file (JSON-serialisable).

    ``{"profile": "JMMC", "standard": 1|2, "counts": {"SEVERE": n, "WARNING": n, "INFO": n},
    "failures": [{"rule", "severity", "extname", "extver", "member", "message"}, ...]}``.
    """
    primary = hdul[0].header
    standard = 2 if _text(primary.get("CONTENT", "")).upper() == "OIFITS2" else 1
    report = _Report(standard)
    tables = [(_text(h.header.get("EXTNAME", "")).upper(), h) for h in hdul[1:]]
    names = Counter(name for name, _ in tables)

    if standard == 2:
        for keyword in _PRIMARY_V2:
            if keyword not in primary:
                report.add("GENERIC_KEYWORD_MANDATORY", None, keyword, f"Missing keyword '{keyword}'")
    if names["OI_TARGET"] != 1:
        report.add(
            "OIFITS_OI_TARGET_EXIST", None, None, "No OI_TARGET table found: one and only one must be present"
        )
    if not names["OI_WAVELENGTH"]:
        report.add(
            "OIFITS_OI_WAVELENGTH_EXIST",
            None,
            None,
            "No OI_WAVELENGTH table found: one or more must be present",
        )
    if not any(names[n] for n in _DATA_TABLES):
        report.add(
            "OIFITS_OIDATA",
            None,
            None,
            "No OI_VIS, OI_VIS2, OI_T3 table found: one or more of them must be present",
        )
    if standard == 2 and not names["OI_ARRAY"]:
        report.add(
            "OIFITS_OI_ARRAY_EXIST_V2", None, None, "No OI_ARRAY table found: one or more must be present"
        )

    arrays: Counter[str] = Counter()
    instruments: Counter[str] = Counter()
    for name, hdu in tables:
        if name == "OI_ARRAY":
            arrays[_text(hdu.header.get("ARRNAME", ""))] += 1
        elif name == "OI_WAVELENGTH":
            instruments[_text(hdu.header.get("INSNAME", ""))] += 1
    for value, count in arrays.items():
        if count > 1 and value:
            report.add(
                "ARRNAME_UNIQ",
                None,
                "ARRNAME",
                f"{count} OI_ARRAY tables are identified by ARRNAME='{value}'",
            )
    for value, count in instruments.items():
        if count > 1 and value:
            report.add(
                "INSNAME_UNIQ",
                None,
                "INSNAME",
                f"{count} OI_WAVELENGTH tables are identified by INSNAME='{value}'",
            )

    for name, hdu in tables:
        if name not in _STANDARD_TABLES:
            report.add("UNKNOWN_TABLE", hdu, None, f"Skipping non-standard OIFITS '{name or 'extension'}'")
            continue
        if standard == 1 and name in _V2_ONLY:
            report.add("OIFITS_TABLE_NOT_V2", hdu, None, f"Unsupported table {name} in OIFITS V1.0")
            continue
        _check_table(report, name, hdu, arrays, instruments)

    counts = Counter(f.severity for f in report.failures)
    return {
        "profile": PROFILE,
        "standard": standard,
        "counts": {level: counts.get(level, 0) for level in (SEVERE, WARNING, INFO)},
        "failures": [asdict(f) for f in report.failures],
    }


def _check_table(
    report: _Report, name: str, hdu: fits.BinTableHDU, arrays: Counter[str], instruments: Counter[str]
) -> None:
    header = hdu.header
    columns = {c.name.upper(): c for c in (hdu.columns or [])}
    keywords = _KEYWORDS_V1.get(name, ()) + (_KEYWORDS_V2_EXTRA.get(name, ()) if report.standard == 2 else ())
    for keyword in dict.fromkeys(keywords):
        if keyword not in header:
            report.add("GENERIC_KEYWORD_MANDATORY", hdu, keyword, f"Missing keyword '{keyword}'")
    required = _COLUMNS_V1.get(name, ()) + (_COLUMNS_V2_EXTRA.get(name, ()) if report.standard == 2 else ())
    for column in dict.fromkeys(required):
        if column not in columns:
            report.add("GENERIC_COL_MANDATORY", hdu, column, f"Missing column '{column}'")
    for column, expected in _UNITS.items():
        if column not in columns or column not in required:
            continue
        unit = _text(columns[column].unit or "")
        if not unit:
            report.add(
                "GENERIC_COL_UNIT_EXIST",
                hdu,
                column,
                f"Missing unit for column '{column}', should be '{expected}'",
            )
        elif unit.lower() != expected:
            report.add(
                "GENERIC_COL_UNIT",
                hdu,
                column,
                f"Invalid unit for column '{column}', found '{unit}' should be '{expected}'",
            )
    revision = header.get("OI_REVN")
    if revision is not None and revision != report.standard:
        report.add(
            "GENERIC_KEYWORD_VAL_ACCEPTED_INT",
            hdu,
            "OI_REVN",
            f"Invalid value for keyword 'OI_REVN', found '{revision}' should be '{report.standard}'",
        )
    data = hdu.data
    if name == "OI_TARGET":
        _check_target(report, hdu, columns)
    elif name == "OI_ARRAY":
        _check_array(report, hdu, columns)
    elif name == "OI_WAVELENGTH":
        if not _text(header.get("INSNAME", "")):
            report.add("OI_WAVELENGTH_INSNAME", hdu, "INSNAME", "INSNAME identifier has blank value")
        if "EFF_WAVE" in columns and data is not None:
            low, high = _EFF_WAVE_RANGE
            for row, wave in enumerate(np.asarray(data["EFF_WAVE"], dtype=float)):
                if not low <= wave <= high:
                    report.add(
                        "OI_WAVELENGTH_EFF_WAVE",
                        hdu,
                        "EFF_WAVE",
                        f"EFF_WAVE column value '{wave}' is out of range [0.1E-6 ... 20.0E-6] "
                        f"at row {row + 1}",
                    )
    else:  # data tables
        arrname = _text(header.get("ARRNAME", ""))
        if arrname and arrname not in arrays:
            report.add(
                "ARRNAME_REF", hdu, "ARRNAME", f"Missing OI_ARRAY table that describes the '{arrname}' array"
            )
        insname = _text(header.get("INSNAME", ""))
        if insname and insname not in instruments:
            report.add(
                "INSNAME_REF",
                hdu,
                "INSNAME",
                f"Missing OI_WAVELENGTH table that describes the '{insname}' instrument",
            )
        date_obs = _text(header.get("DATE-OBS", ""))
        if date_obs:
            match = _DATE_OBS.match(date_obs)
            if match is None:
                report.add(
                    "GENERIC_DATE_OBS_STANDARD",
                    hdu,
                    "DATE-OBS",
                    f"The keyword DATE-OBS '{date_obs}' is not in a standard format 'YYYY-MM-DD'",
                )
            elif not 1933 <= int(match.group(1)) <= 2150:
                report.add(
                    "GENERIC_DATE_OBS_RANGE",
                    hdu,
                    "DATE-OBS",
                    f"The keyword DATE-OBS '{date_obs}' has an incorrect year, expected in [1933 - 2150]",
                )
        if "MJD" in columns and data is not None and len(data):
            mjd = np.asarray(data["MJD"], dtype=float)
            low, high = _MJD_RANGE
            outside = ~((mjd >= low) & (mjd <= high))
            if outside.any():
                report.add(
                    "GENERIC_MJD_RANGE",
                    hdu,
                    "MJD",
                    f"MJD [{mjd[outside][0]}] is out of range, expected in [{low} - {high}]"
                    + (f" ({int(outside.sum())} rows)" if outside.sum() > 1 else ""),
                )


def _check_target(report: _Report, hdu: fits.BinTableHDU, columns: dict[str, Any]) -> None:
    data = hdu.data
    if data is None or len(data) == 0:
        report.add("OI_TARGET_TARGET_EXIST", hdu, None, "No target defined")
        return
    if "TARGET" in columns:
        names = [_text(t) for t in data["TARGET"]]
        seen: dict[str, int] = {}
        for row, target in enumerate(names, start=1):
            if not target:
                report.add("OI_TARGET_TARGET", hdu, "TARGET", f"TARGET undefined at row {row}")
            elif target in seen:
                report.add(
                    "OI_TARGET_TARGET_UNIQ",
                    hdu,
                    "TARGET",
                    f"TARGET[{target}] duplicated at rows {seen[target]}, {row}",
                )
            else:
                seen[target] = row
    if "TARGET_ID" in columns:
        seen_id: dict[int, int] = {}
        for row, tid in enumerate(np.asarray(data["TARGET_ID"], dtype=np.int64), start=1):
            if tid < 1:
                report.add(
                    "OI_TARGET_TARGETID_MIN", hdu, "TARGET_ID", f"TARGET_ID[{tid}] cannot be < 1 at row {row}"
                )
            if int(tid) in seen_id:
                report.add(
                    "OI_TARGET_TARGETID_UNIQ",
                    hdu,
                    "TARGET_ID",
                    f"TARGET_ID[{tid}] duplicated at rows {seen_id[int(tid)]}, {row}",
                )
            seen_id.setdefault(int(tid), row)
    for column in ("RAEP0", "DECEP0"):
        if column in columns:
            for row, value in enumerate(np.asarray(data[column], dtype=float), start=1):
                if value == 0.0:
                    report.add(
                        "OI_TARGET_COORD", hdu, column, f"The target {column} coordinate is 0.0 at row {row}"
                    )


def _check_array(report: _Report, hdu: fits.BinTableHDU, columns: dict[str, Any]) -> None:
    header, data = hdu.header, hdu.data
    if "ARRNAME" in header and not _text(header.get("ARRNAME", "")):
        report.add("OI_ARRAY_ARRNAME", hdu, "ARRNAME", "ARRNAME identifier has blank value")
    xyz = [header.get(k) for k in ("ARRAYX", "ARRAYY", "ARRAYZ")]
    if all(isinstance(v, int | float) for v in xyz):
        radius = float(np.sqrt(sum(float(v) ** 2 for v in xyz)))
        low, high = _EARTH_RADIUS_RANGE
        if not low <= radius <= high:
            report.add(
                "OI_ARRAY_XYZ",
                hdu,
                "ARRAYX",
                f"Invalid ARRAY_XYZ keyword '{xyz}' (distance to Earth's centre {radius:.0f} m)",
            )
    if data is None:
        return
    if "STA_NAME" in columns:
        for row, sta in enumerate(data["STA_NAME"], start=1):
            if not _text(sta):
                report.add("OI_ARRAY_STA_NAME", hdu, "STA_NAME", f"STA_NAME undefined at row {row}")
    if "STA_INDEX" in columns:
        seen: dict[int, int] = {}
        for row, index in enumerate(np.asarray(data["STA_INDEX"], dtype=np.int64), start=1):
            if index < 1:
                report.add(
                    "OI_ARRAY_STA_INDEX_MIN",
                    hdu,
                    "STA_INDEX",
                    f"STA_INDEX[{index}] cannot be < 1 at row {row}",
                )
            if int(index) in seen:
                report.add(
                    "OI_ARRAY_STA_INDEX_UNIQ",
                    hdu,
                    "STA_INDEX",
                    f"STA_INDEX[{index}] duplicated at rows {seen[int(index)]}, {row}",
                )
            seen.setdefault(int(index), row)
