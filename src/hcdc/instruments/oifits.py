"""OIFITS products (optical interferometry, OIFITS v1 and v2): recognised and catalogued.

Recognition: an empty primary HDU (NAXIS=0, or a zero NAXISn such as AMBER's and MATISSE's
NAXIS=1 / NAXIS1=0) followed by OI_* binary tables, or a primary ``CONTENT='OIFITS2'``.
Catalogued (the rules OiDB applies through JMMC oitools, see
../shared/reference/interferometry.md section 2.2):

* target(s): ``TARGET`` of OI_TARGET (several are joined with ``"; "``, all in
  ``extra['targets']``); RA/Dec = ``RAEP0``/``DECEP0`` [deg] when there is one target;
* instrument: ``FileMetadata.instrument = 'OIFITS'``; ``arm`` = primary ``INSTRUME`` or, when
  absent, the family prefix of the first ``INSNAME`` (``PIONIER_Pnat(...)`` -> ``PIONIER``);
  every ``INSNAME`` and ``ARRNAME`` is in ``extra``;
* MJD range: min / max ``MJD`` over every data table (OI_VIS, OI_VIS2, OI_T3, OI_FLUX) ->
  ``mjd_obs`` / ``mjd_end``; ``date_obs`` and ``night`` from ``mjd_obs``. (OiDB's ``t_min``
  leaves OI_FLUX out; including it makes the range cover every measurement in the file);
* wavelength range: min / max ``EFF_WAVE`` over all OI_WAVELENGTH tables, in micrometres;
* version: 2 when primary ``CONTENT='OIFITS2'``, else 1 (``extra['oifits_version']``);
  tables with ``OI_REVN=2`` in a v1 file are a known real-world hybrid, accepted with a note;
* validation: ``extra['oifits_check']``, the report of :func:`hcdc.instruments.oifits_check.check_oifits`
  (oitools' rule names, JMMC profile severities); SEVERE failures do not reject the file.

Rejected with :class:`MetadataError` (the reason lists every problem found):
missing OI_TARGET / OI_WAVELENGTH / data table; OIFITS 2-only tables (OI_FLUX, OI_CORR,
OI_INSPOL) in a v1 file; non-standard tables using the reserved ``OI_`` prefix (e.g.
OI_SPECTRUM, a pre-standard name of OI_FLUX); several tables with the same EXTNAME and
EXTVER (e.g. three OI_INSPOL all EXTVER=1); unreadable tables.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits

from hcdc.instruments.base import (
    FileMetadata,
    Instrument,
    MetadataError,
    mjd_to_datetime,
    night_of,
)
from hcdc.instruments.fits_file import check_whole
from hcdc.instruments.oifits_check import check_oifits
from hcdc.instruments.registry import register

INSTRUMENT = "OIFITS"

V1_TABLES = frozenset({"OI_TARGET", "OI_WAVELENGTH", "OI_ARRAY", "OI_VIS", "OI_VIS2", "OI_T3"})
V2_ONLY_TABLES = frozenset({"OI_FLUX", "OI_CORR", "OI_INSPOL"})
STANDARD_TABLES = V1_TABLES | V2_ONLY_TABLES
DATA_TABLES = ("OI_VIS", "OI_VIS2", "OI_T3", "OI_FLUX")

_INSNAME_FAMILY = re.compile(r"^[A-Za-z0-9]+")


def _strip(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


def insname_family(insname: str) -> str:
    """Instrument family of an INSNAME: its leading alphanumeric run (``GRAVITY_SC`` -> ``GRAVITY``)."""
    match = _INSNAME_FAMILY.match(insname.strip())
    return match.group(0).upper() if match else insname.strip()


def _table_names(hdul: fits.HDUList) -> list[tuple[str, int | None]]:
    names = []
    for hdu in hdul[1:]:
        extver = hdu.header.get("EXTVER")
        names.append((str(hdu.header.get("EXTNAME", "")).strip().upper(), extver))
    return names


def validation_problems(version: int, names: list[tuple[str, int | None]]) -> list[str]:
    """Structural problems that make a file an invalid OIFITS (empty list when valid)."""
    problems: list[str] = []
    present = {name for name, _ in names}
    for required in ("OI_TARGET", "OI_WAVELENGTH"):
        if required not in present:
            problems.append(f"mandatory table {required} is missing")
    if not present & set(DATA_TABLES):
        problems.append("no data table (OI_VIS, OI_VIS2, OI_T3 or OI_FLUX)")
    if version == 1:
        v2_only = sorted(present & V2_ONLY_TABLES)
        if v2_only:
            problems.append(
                f"OIFITS v1 file (no CONTENT='OIFITS2') holds OIFITS 2-only tables {', '.join(v2_only)}"
            )
    unknown = sorted(n for n in present if n.startswith("OI_") and n not in STANDARD_TABLES)
    if unknown:
        problems.append(f"non-standard table(s) {', '.join(unknown)} use the reserved OI_ prefix")
    counts = Counter((name, ver) for name, ver in names if ver is not None and name.startswith("OI_"))
    for (name, ver), count in sorted(counts.items()):
        if count > 1:
            problems.append(f"{count} {name} tables share EXTVER={ver} (EXTNAME+EXTVER must be unique)")
    return problems


def primary_data_elements(values: Mapping[str, Any] | fits.Header) -> int:
    """Number of data elements a primary header announces (product of NAXISn; 0 for NAXIS=0)."""
    naxis = values.get("NAXIS", 0)
    if not isinstance(naxis, int) or naxis <= 0:
        return 0
    elements = 1
    for axis in range(1, naxis + 1):
        length = values.get(f"NAXIS{axis}", 0)
        elements *= length if isinstance(length, int) and length > 0 else 0
    return elements


def _column(hdu: fits.BinTableHDU, name: str) -> np.ndarray | None:
    if hdu.columns is None or name not in hdu.columns.names:
        return None
    return np.asarray(hdu.data[name])


@register
class Oifits(Instrument):
    """OIFITS v1/v2 product (any facility)."""

    name: ClassVar[str] = INSTRUMENT
    # Above the instrument modules: an OIFITS product made by an ESO instrument (INSTRUME
    # GRAVITY, or even NAOS+CONICA for SAM) is still an OIFITS product.
    priority: ClassVar[int] = 200

    # NAXISn are read too; the fast path checks them (standard, in place) before asking.
    identification_keywords: ClassVar[tuple[str, ...]] = ("CONTENT", "NAXIS")

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        decided = self.identify_values(header)
        if decided is not None:
            return decided
        try:
            return any(
                str(hdu.header.get("EXTNAME", "")).strip().upper().startswith("OI_") for hdu in hdul[1:]
            )
        except Exception:  # noqa: BLE001 - unreadable extensions: not recognisable as OIFITS
            return False

    def identify_values(self, values: Mapping[str, Any] | fits.Header) -> bool | None:
        """True for ``CONTENT='OIFITS*'``, False for a primary holding data (OIFITS primaries
        are empty; this skips scanning image files), None otherwise: the extensions decide.

        An empty primary is ``NAXIS=0`` or any ``NAXISn=0``: real AMBER/MATISSE products write
        ``NAXIS=1`` / ``NAXIS1=0``, and an OIFITS file is recognised by its tables.
        """
        if str(values.get("CONTENT", "")).strip().upper().startswith("OIFITS"):
            return True
        if primary_data_elements(values) != 0:
            return False
        return None

    # extract_values: the base's None; an OIFITS product is catalogued from its tables.

    def extract(
        self, header: fits.Header, hdul: fits.HDUList, values: Mapping[str, Any] | None = None
    ) -> FileMetadata:
        content = str(header.get("CONTENT", "")).strip().upper()
        version = 2 if content == "OIFITS2" else 1
        # a cut file would otherwise read as one missing its OI_ tables
        check_whole(hdul)
        names = _table_names(hdul)
        problems = validation_problems(version, names)
        if problems:
            raise MetadataError("invalid OIFITS: " + "; ".join(problems))
        try:
            return self._catalogue(header, hdul, version)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise MetadataError(
                f"invalid OIFITS: unreadable table content ({type(exc).__name__}: {exc})"
            ) from exc

    def _catalogue(self, header: fits.Header, hdul: fits.HDUList, version: int) -> FileMetadata:
        targets: list[str] = []
        coords: list[tuple[float, float]] = []
        insnames: list[str] = []
        arrnames: list[str] = []
        waves: list[float] = []
        mjds: dict[str, list[float]] = {name: [] for name in DATA_TABLES}
        counts: Counter[str] = Counter()
        hybrid = False
        for hdu in hdul[1:]:
            name = str(hdu.header.get("EXTNAME", "")).strip().upper()
            if not name.startswith("OI_"):
                continue
            counts[name] += len(hdu.data) if hdu.data is not None else 0
            if version == 1 and hdu.header.get("OI_REVN") == 2:
                hybrid = True
            for key, bucket in (("INSNAME", insnames), ("ARRNAME", arrnames)):
                value = _strip(hdu.header.get(key, ""))
                if value and value not in bucket:
                    bucket.append(value)
            if name == "OI_TARGET":
                for target, ra, dec in zip(
                    _column(hdu, "TARGET"), _column(hdu, "RAEP0"), _column(hdu, "DECEP0"), strict=True
                ):
                    if _strip(target) not in targets:
                        targets.append(_strip(target))
                        coords.append((float(ra), float(dec)))
            elif name == "OI_WAVELENGTH":
                eff = _column(hdu, "EFF_WAVE")
                if eff is not None and eff.size:
                    waves.extend([float(np.nanmin(eff)), float(np.nanmax(eff))])
            elif name in mjds:
                mjd = _column(hdu, "MJD")
                if mjd is not None and mjd.size:
                    finite = mjd[np.isfinite(mjd)]
                    if finite.size:
                        mjds[name].extend([float(finite.min()), float(finite.max())])
        if not targets:
            raise MetadataError("invalid OIFITS: OI_TARGET has no row")
        if not waves:
            raise MetadataError("invalid OIFITS: OI_WAVELENGTH has no EFF_WAVE value")
        times = [t for name in DATA_TABLES for t in mjds[name]]

        instrume = _strip(header.get("INSTRUME", ""))
        meta = FileMetadata(instrument=INSTRUMENT, file_class="OIFITS", type="OIFITS")
        meta.arm = instrume.upper() if instrume else (insname_family(insnames[0]) if insnames else None)
        meta.target = "; ".join(targets)
        if len(targets) == 1:
            meta.ra, meta.dec = coords[0]
        meta.wavelength_min = round(min(waves) * 1e6, 6)
        meta.wavelength_max = round(max(waves) * 1e6, 6)
        if times:
            meta.mjd_obs, meta.mjd_end = min(times), max(times)
            meta.date_obs = mjd_to_datetime(meta.mjd_obs)
            meta.night = night_of(meta.date_obs)
        prog = header.get("HIERARCH ESO OBS PROG ID")
        meta.prog_id = _strip(prog) if prog else None
        catg = header.get("HIERARCH ESO PRO CATG")
        meta.category = _strip(catg) if catg else None
        meta.extra.update(
            {
                "oifits_version": version,
                "targets": targets,
                "insnames": insnames,
                "arrnames": arrnames,
                "instrume": instrume or None,
                "tables": dict(sorted(counts.items())),
                "hybrid_revision": hybrid,
                # oitools' rules under the JMMC profile; SEVERE is reported, never blocking (as in OiDB)
                "oifits_check": check_oifits(hdul),
            }
        )
        return meta
