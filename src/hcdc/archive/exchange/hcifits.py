"""HCI-FITS, the DIVA archive's format for high-contrast imaging results (Hagan et al. 2018).

One file holds one reduction: ``PRIMARY`` (target, telescope, instrument, filter, photometry),
then five mandatory extensions ``DATA_INFORMATION`` (one row per reduced image), ``REDUCED_DATA``,
``SNR_MAP``, ``SENSITIVITY_MAP`` (cubes of Nimages frames), ``DETECTION_LIMIT`` (radius / limit
vectors per image) and the optional ``SOURCE_DETECTION`` (one row per candidate, vector cells of
length Nimages). See ``docs/level3.md`` and ``../shared/data/level3/hcifits/HCIFITS_STRUCTURE.md``.

* :func:`read_hcifits` accepts what real files contain: the ALICE products' departures
  (``UT_Midpoint_Date_of_Observaton`` spelt without the "i", TFORM ``1D`` for ``D``, ``K``/``J``
  integers, units ``Angstroms``, ``sec``, ``as``, ``c/s``, ``UNITLESS``) are mapped to the
  spec's meaning; contrast in ``dmag`` (DIVA) or as a flux ratio (ALICE) both read as a ratio.
* :func:`write_hcifits` writes what the spec says (DIVAp's templates: formats ``D``/``I``/``160A``,
  units ``deg``, ``s``, ``Angstrom``, ``arcsec``, ``count/s``, ``mag``, ``Jy``,
  ``erg/(cm2 s Angstrom)``, ``dmag``; ``NSIGMA`` in ``SENSITIVITY_MAP``).
* :func:`check_hcifits` lists how a file departs from the spec (empty for hcdc's files).
* :func:`hcifits_to_exchange` turns a file into the TDB exchange dict (import), and
  :func:`export_reduction` writes a TDB reduction of a Level 2 product as HCI-FITS.

Frame 1 of a multi-image file is taken as the reference image for the TDB detection (ALICE:
"North-combined"); the values of every frame are kept in the detection's ``extra``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc import __version__

MANDATORY = ("DATA_INFORMATION", "REDUCED_DATA", "SNR_MAP", "SENSITIVITY_MAP", "DETECTION_LIMIT")
OPTIONAL = ("SOURCE_DETECTION",)

#: unit strings found in files -> (canonical unit, factor to the TDB unit)
_ANGLE_UNITS = {"as": 1000.0, "arcsec": 1000.0, "arcseconds": 1000.0, "arcsecond": 1000.0, "mas": 1.0}
_WAVELENGTH_UNITS = {
    "angstrom": 1e-4,
    "angstroms": 1e-4,
    "a": 1e-4,
    "nm": 1e-3,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
}

#: DATA_INFORMATION columns written: name, format, unit (DIVAp templates)
_DATA_INFORMATION = (
    ("Image_Number", "I", None),
    ("Orientation", "D", "deg"),
    ("Combined_rotation_angle", "D", "deg"),
    ("Number_of_Exposures", "I", None),
    ("Exposure_Time", "D", "s"),
    ("Observation_Start", "D", "d"),  # MJD; the spec names no unit string (not checked)
    ("Observation_End", "D", "d"),
    ("UT_Midpoint_Date_of_Observation", "160A", None),
    ("UT_Midpoint_Time_of_Observation", "160A", None),
    ("Wavelength", "D", "Angstrom"),
    ("Bandwidth", "D", "Angstrom"),
    ("Polarization", "160A", None),
)
#: SOURCE_DETECTION vector columns: name, unit (each with err_<name>)
_SOURCE_COLUMNS = (
    ("SNR", None),
    ("dRA", "arcsec"),
    ("dDEC", "arcsec"),
    ("Sep", "arcsec"),
    ("PA", "deg"),
    ("Flux_cs", "count/s"),
    ("Flux_mag", "mag"),
    ("Flux_Jy", "Jy"),
    ("Flux_erg", "erg/(cm2 s Angstrom)"),
    ("Contrast", "dmag"),
)
_NO_ERROR = {"SNR"}
_ANY_UNIT = "*"
#: columns whose unit string the spec leaves open (not checked)
_FREE_UNITS = {"Observation_Start", "Observation_End"}


class HciFitsError(ValueError):
    """A file is not readable HCI-FITS, or a reduction cannot be written as one (names the file)."""


@dataclass
class HciCandidate:
    """One SOURCE_DETECTION row: per-image values (mas, deg, flux ratio, mag), NaN when absent."""

    number: int
    snr: list[float]
    dra_mas: list[float]
    dra_err_mas: list[float]
    ddec_mas: list[float]
    ddec_err_mas: list[float]
    sep_mas: list[float]
    sep_err_mas: list[float]
    pa_deg: list[float]
    pa_err_deg: list[float]
    contrast: list[float]
    contrast_err: list[float]
    mag: list[float]
    mag_err: list[float]
    flux_cs: list[float] = field(default_factory=list)
    flux_cs_err: list[float] = field(default_factory=list)


@dataclass
class HciFits:
    """The content of an HCI-FITS file, in TDB units (mas, deg, micrometres, MJD)."""

    target: str | None
    alt_names: list[str]
    primary: dict[str, Any]
    images: list[dict[str, Any]]  # DATA_INFORMATION rows (wavelength_um, mjd_start, ...)
    reduced: np.ndarray | None = None  # (Nim, ny, nx)
    snr_map: np.ndarray | None = None
    sensitivity: np.ndarray | None = None
    limits: list[dict[str, Any]] = field(default_factory=list)  # per image: separation_mas, limit
    nsigma: float | None = None
    algorithm: str | None = None
    candidates: list[HciCandidate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# reading


def _col(table: Any, *names: str) -> str | None:
    lower = {n.lower(): n for n in table.columns.names}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _unit(table: Any, name: str) -> str:
    return (table.columns[name].unit or "").strip().lower()


def _factor(
    unit: str, table: dict[str, float], default: float, what: str, path: Path, warnings: list[str]
) -> float:
    if not unit:
        return default
    if unit in table:
        return table[unit]
    warnings.append(f"{path.name}: unknown {what} unit {unit!r}, assumed the spec's")
    return default


def _vector(row: Any, name: str | None, n: int, factor: float = 1.0) -> list[float]:
    if name is None:
        return [math.nan] * n
    values = np.atleast_1d(np.asarray(row[name], dtype=float)) * factor
    return [float(v) for v in values]


def _contrast_ratio(values: list[float], errors: list[float], unit: str) -> tuple[list[float], list[float]]:
    """Contrast columns as flux ratios: ``dmag`` (DIVA) converted, a unitless ratio (ALICE) kept."""
    if unit != "dmag":
        return values, errors
    ratio = [10 ** (-0.4 * v) if math.isfinite(v) else math.nan for v in values]
    err = [
        r * math.log(10) / 2.5 * e if math.isfinite(e) else math.nan
        for r, e in zip(ratio, errors, strict=True)
    ]
    return ratio, err


def read_hcifits(path: str | Path) -> HciFits:
    """Read an HCI-FITS file (spec or ALICE variant); :class:`HciFitsError` naming the file."""
    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise HciFitsError(f"{path}: not a readable FITS file ({exc})") from exc
    with hdul:
        names = [h.name for h in hdul]
        missing = [m for m in MANDATORY if m not in names]
        if missing:
            raise HciFitsError(f"{path}: not HCI-FITS, missing extension(s) {', '.join(missing)}")
        primary = {k: v for k, v in hdul[0].header.items() if k not in ("COMMENT", "HISTORY", "")}
        warnings: list[str] = []
        out = HciFits(
            target=str(primary.get("TARGNAME")).strip() if primary.get("TARGNAME") else None,
            alt_names=[str(primary[k]).strip() for k in sorted(primary) if k.startswith("ALTNAME")],
            primary=primary,
            images=_read_information(hdul["DATA_INFORMATION"].data, path, warnings),
            reduced=np.asarray(hdul["REDUCED_DATA"].data, dtype=np.float32),
            snr_map=np.asarray(hdul["SNR_MAP"].data, dtype=np.float32),
            sensitivity=np.asarray(hdul["SENSITIVITY_MAP"].data, dtype=np.float32),
            algorithm=hdul["REDUCED_DATA"].header.get("REDALGO"),
            warnings=warnings,
        )
        limit_hdu = hdul["DETECTION_LIMIT"]
        out.nsigma = limit_hdu.header.get("NSIGMA", hdul["SENSITIVITY_MAP"].header.get("NSIGMA"))
        out.limits = _read_limits(limit_hdu.data, path, warnings)
        if "SOURCE_DETECTION" in names and hdul["SOURCE_DETECTION"].data is not None:
            out.candidates = _read_candidates(hdul["SOURCE_DETECTION"].data, len(out.images), path, warnings)
    return out


def _read_information(table: Any, path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    wl = _col(table, "Wavelength")
    bw = _col(table, "Bandwidth")
    factor = _factor(_unit(table, wl), _WAVELENGTH_UNITS, 1e-4, "wavelength", path, warnings) if wl else 1.0
    date = _col(table, "UT_Midpoint_Date_of_Observation", "UT_Midpoint_Date_of_Observaton")
    time = _col(table, "UT_Midpoint_Time_of_Observation", "UT_Midpoint_Time_of_Observaton")
    if date and date.endswith("Observaton"):
        warnings.append(f"{path.name}: DATA_INFORMATION spells {date} (spec: ...Observation)")
    rows = []
    for row in table:

        def get(name: str | None, row: Any = row) -> Any:
            if name is None:
                return None
            value = row[name]
            return value.strip() if isinstance(value, str) else (None if value is None else value.item())

        rows.append(
            {
                "image": get(_col(table, "Image_Number")),
                "orientation_deg": get(_col(table, "Orientation")),
                "rotation_deg": get(_col(table, "Combined_rotation_angle")),
                "n_exposures": get(_col(table, "Number_of_Exposures")),
                "exposure_s": get(_col(table, "Exposure_Time")),
                "mjd_start": get(_col(table, "Observation_Start")),
                "mjd_end": get(_col(table, "Observation_End")),
                "ut_date": get(date),
                "ut_time": get(time),
                "wavelength_um": None if wl is None else float(row[wl]) * factor,
                "bandwidth_um": None if bw is None else float(row[bw]) * factor,
                "polarization": get(_col(table, "Polarization")),
            }
        )
    return rows


def _read_limits(table: Any, path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    radius = _col(table, "Radius")
    limit = _col(table, "Detection_Limit")
    if radius is None or limit is None:
        raise HciFitsError(f"{path}: DETECTION_LIMIT needs Radius and Detection_Limit columns")
    factor = _factor(_unit(table, radius), _ANGLE_UNITS, 1000.0, "radius", path, warnings)
    return [
        {
            "separation_mas": [float(v) * factor for v in np.atleast_1d(row[radius])],
            "limit": [float(v) for v in np.atleast_1d(row[limit])],
        }
        for row in table
    ]


def _read_candidates(table: Any, n_images: int, path: Path, warnings: list[str]) -> list[HciCandidate]:
    out = []
    angle = {}
    for name in ("dRA", "err_dRA", "dDEC", "err_dDEC", "Sep", "err_Sep"):
        column = _col(table, name)
        angle[name] = (
            column,
            _factor(_unit(table, column), _ANGLE_UNITS, 1000.0, name, path, warnings) if column else 1.0,
        )
    contrast_col, contrast_err_col = _col(table, "Contrast"), _col(table, "err_Contrast")
    contrast_unit = _unit(table, contrast_col) if contrast_col else ""
    for index, row in enumerate(table, start=1):
        number_col = _col(table, "Candidate")
        contrast, contrast_err = _contrast_ratio(
            _vector(row, contrast_col, n_images), _vector(row, contrast_err_col, n_images), contrast_unit
        )
        out.append(
            HciCandidate(
                number=int(row[number_col]) if number_col else index,
                snr=_vector(row, _col(table, "SNR"), n_images),
                dra_mas=_vector(row, angle["dRA"][0], n_images, angle["dRA"][1]),
                dra_err_mas=_vector(row, angle["err_dRA"][0], n_images, angle["err_dRA"][1]),
                ddec_mas=_vector(row, angle["dDEC"][0], n_images, angle["dDEC"][1]),
                ddec_err_mas=_vector(row, angle["err_dDEC"][0], n_images, angle["err_dDEC"][1]),
                sep_mas=_vector(row, angle["Sep"][0], n_images, angle["Sep"][1]),
                sep_err_mas=_vector(row, angle["err_Sep"][0], n_images, angle["err_Sep"][1]),
                pa_deg=_vector(row, _col(table, "PA"), n_images),
                pa_err_deg=_vector(row, _col(table, "err_PA"), n_images),
                contrast=contrast,
                contrast_err=contrast_err,
                mag=_vector(row, _col(table, "Flux_mag"), n_images),
                mag_err=_vector(row, _col(table, "err_Flux_mag"), n_images),
                flux_cs=_vector(row, _col(table, "Flux_cs"), n_images),
                flux_cs_err=_vector(row, _col(table, "err_Flux_cs"), n_images),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# the spec's checks


def check_hcifits(path: str | Path) -> list[str]:
    """How ``path`` departs from the spec (DIVAp's checks); an empty list when it follows it."""
    path = Path(path)
    problems: list[str] = []
    with fits.open(path, memmap=False) as hdul:
        names = [h.name for h in hdul]
        problems += [f"missing mandatory extension {m}" for m in MANDATORY if m not in names]
        if problems:
            return problems
        primary = hdul[0].header
        if primary.get("FILETYPE") != "HLSP":
            problems.append("PRIMARY FILETYPE is not 'HLSP'")
        for hdu in hdul[1:]:
            if not hdu.name:
                problems.append("an extension has no EXTNAME")
        shape = hdul["REDUCED_DATA"].data.shape
        for name in ("SNR_MAP", "SENSITIVITY_MAP"):
            if hdul[name].data is None or hdul[name].data.shape != shape:
                problems.append(f"{name} shape differs from REDUCED_DATA {shape}")
        if "NSIGMA" not in hdul["SENSITIVITY_MAP"].header:
            problems.append("SENSITIVITY_MAP must contain NSIGMA")
        n_images = shape[0] if len(shape) == 3 else 1
        info = hdul["DATA_INFORMATION"]
        if len(info.data) != n_images:
            problems.append(f"DATA_INFORMATION has {len(info.data)} rows for {n_images} images")
        problems += _check_columns(
            info, {n: (f, _ANY_UNIT if n in _FREE_UNITS else u) for n, f, u in _DATA_INFORMATION}
        )
        if "SOURCE_DETECTION" in names:
            expected = {"Candidate": ("I", None)}
            for name, unit in _SOURCE_COLUMNS:
                expected[name] = ("D", unit)
                if name not in _NO_ERROR:
                    expected[f"err_{name}"] = ("D", unit)
            problems += _check_columns(hdul["SOURCE_DETECTION"], expected, vector=n_images)
    return problems


def _check_columns(
    hdu: Any, expected: dict[str, tuple[str, str | None]], vector: int | None = None
) -> list[str]:
    problems = []
    columns = {c.name: c for c in hdu.columns}
    for name, (form, unit) in expected.items():
        column = columns.get(name)
        if column is None:
            problems.append(f"{hdu.name}: column {name} is missing")
            continue
        want = f"{vector}{form}" if vector and vector > 1 and name != "Candidate" else form
        have = str(column.format)
        if have.startswith("1") and not have[1:2].isdigit():
            have = have[1:]  # a repeat count of 1 is the scalar format ("1D" is "D")
        if have != want:
            problems.append(f"{hdu.name}: column {name} has format {column.format}, spec {want}")
        if unit != _ANY_UNIT and (column.unit or None) != unit:
            problems.append(f"{hdu.name}: column {name} has unit {column.unit!r}, spec {unit!r}")
    return problems


# --------------------------------------------------------------------------------------------
# writing


@dataclass
class HciReduction:
    """What :func:`write_hcifits` writes: one reduced image (and its maps) and its detections."""

    target: str
    image: np.ndarray  # (ny, nx), north up east left
    snr_map: np.ndarray | None
    sensitivity: np.ndarray  # (ny, nx): detection limit (contrast) at each pixel's separation
    limit_separation_mas: list[float]
    limit_contrast: list[float]
    nsigma: float
    image_unit: str
    algorithm: str
    pixel_scale_mas: float | None
    wavelength_um: float | None = None
    mjd_start: float | None = None
    mjd_end: float | None = None
    telescope: str | None = None
    instrument: str | None = None
    filter: str | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    pmra_masyr: float | None = None
    pmdec_masyr: float | None = None
    magnitudes: dict[str, float] = field(default_factory=dict)  # "J", "H", "K" -> mag
    detections: list[dict[str, Any]] = field(default_factory=list)  # TDB detection dicts


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _cube(image: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    data = np.full(shape, np.nan, np.float32) if image is None else np.asarray(image, np.float32)
    return data[np.newaxis]


def write_hcifits(red: HciReduction, path: str | Path) -> Path:
    """Write ``red`` as an HCI-FITS file following the spec (one image); returns the path."""
    path = Path(path)
    primary = fits.PrimaryHDU()
    h = primary.header
    h["FILETYPE"] = ("HLSP", "type of data found in data file")
    h["ORIGIN"] = (f"hcdc {__version__}", "FITS file originator")
    h["DATE"] = (dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), "date this file was written (yyyy-mm-dd)")
    h["DATATYPE"] = ("Single-Image", "Data type")
    extensions = [*MANDATORY, "SOURCE_DETECTION"]
    h["NEXTEND"] = (len(extensions), "Number of standard extensions")
    for n, name in enumerate(extensions, start=1):
        h[f"EXT{n}NAME"] = (name, f"Name of Extension {n}")
        h[f"EXT{n}TYPE"] = (
            "IMAGE" if name in ("REDUCED_DATA", "SNR_MAP", "SENSITIVITY_MAP") else "BINTABLE",
            f"Type of Extension {n}",
        )
    h["FRAMENUM"] = (1, "# of frames in the dataset")
    h["FRAME1"] = ("North-combined", "description of Frame 1")
    for key, value, comment in (
        ("TELESCOP", red.telescope, "telescope used to acquire data"),
        ("INSTRUME", red.instrument, "instrument used to acquire data"),
        ("FILTER", red.filter, "filter"),
        ("TARGNAME", red.target, "target name"),
        ("RA_TARG", red.ra_deg, "RA of target (deg) (ICRS)"),
        ("DEC_TARG", red.dec_deg, "Dec of target (deg) (ICRS)"),
        ("PROPRA", red.pmra_masyr, "Proper Motion (RA) of target (mas/yr)"),
        ("PROPDEC", red.pmdec_masyr, "Proper Motion (Dec) of target (mas/yr)"),
        ("CANDNUM", len(red.detections), "# of point source detections: see Ext. 6"),
        (
            "PIXSCALE",
            None if red.pixel_scale_mas is None else red.pixel_scale_mas / 1000.0,
            "pixel scale (arcsec)",
        ),
    ):
        if value is not None:
            h[key] = (value, comment)
    for band in ("J", "H", "K"):
        if red.magnitudes.get(band) is not None:
            h[f"{band}_2MASS"] = (red.magnitudes[band], f"target {band} band magnitude")
    shape = red.image.shape
    hdus: list[Any] = [primary, _information_hdu(red)]
    reduced = fits.ImageHDU(_cube(red.image, shape), name="REDUCED_DATA")
    reduced.header["BUNIT"] = (red.image_unit or "UNITLESS", "brightness units")
    reduced.header["REDALGO"] = (red.algorithm, "reduction algorithm")
    snr = fits.ImageHDU(_cube(red.snr_map, shape), name="SNR_MAP")
    snr.header["BUNIT"] = ("UNITLESS", "brightness units")
    sens = fits.ImageHDU(_cube(red.sensitivity, shape), name="SENSITIVITY_MAP")
    sens.header["BUNIT"] = ("CONTRAST", "detection limit as a flux ratio to the star")
    sens.header["NSIGMA"] = (red.nsigma, "detection limit confidence level (sigma)")
    n = len(red.limit_separation_mas)
    limits = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                "Radius",
                f"{n}D",
                unit="arcsec",
                array=np.array([[s / 1000.0 for s in red.limit_separation_mas]]),
            ),
            fits.Column("Detection_Limit", f"{n}D", array=np.array([red.limit_contrast], dtype=float)),
        ],
        name="DETECTION_LIMIT",
    )
    limits.header["NSIGMA"] = (red.nsigma, "detection limit confidence level (sigma)")
    hdus += [reduced, snr, sens, limits, _sources_hdu(red.detections)]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _information_hdu(red: HciReduction) -> fits.BinTableHDU:
    mid = None
    if red.mjd_start is not None:
        from astropy.time import Time

        mid = Time((red.mjd_start + (red.mjd_end or red.mjd_start)) / 2.0, format="mjd", scale="utc").datetime
    values = {
        "Image_Number": [1],
        "Orientation": [0.0],  # north up: the image's rotation east of north
        "Combined_rotation_angle": [math.nan],
        "Number_of_Exposures": [0],
        "Exposure_Time": [math.nan],
        "Observation_Start": [_nan(red.mjd_start)],
        "Observation_End": [_nan(red.mjd_end if red.mjd_end is not None else red.mjd_start)],
        "UT_Midpoint_Date_of_Observation": ["" if mid is None else mid.strftime("%Y-%m-%d")],
        "UT_Midpoint_Time_of_Observation": ["" if mid is None else mid.strftime("%H:%M:%S")],
        "Wavelength": [math.nan if red.wavelength_um is None else red.wavelength_um * 1e4],
        "Bandwidth": [math.nan],
        "Polarization": ["I"],
    }
    return fits.BinTableHDU.from_columns(
        [fits.Column(name, form, unit=unit, array=values[name]) for name, form, unit in _DATA_INFORMATION],
        name="DATA_INFORMATION",
    )


def _sources_hdu(detections: list[dict[str, Any]]) -> fits.BinTableHDU:
    def values(key: str, factor: float = 1.0) -> np.ndarray:
        return np.array([_nan(d.get(key)) * factor for d in detections], dtype=float)

    contrast = values("contrast")
    contrast_err = values("contrast_err")
    with np.errstate(divide="ignore", invalid="ignore"):
        dmag = np.where(contrast > 0, -2.5 * np.log10(contrast), np.nan)
        dmag_err = np.where(contrast > 0, 2.5 / np.log(10) * contrast_err / contrast, np.nan)
    data = {
        "SNR": values("snr"),
        "dRA": values("dra_mas", 1e-3),
        "err_dRA": values("dra_err_mas", 1e-3),
        "dDEC": values("ddec_mas", 1e-3),
        "err_dDEC": values("ddec_err_mas", 1e-3),
        "Sep": values("separation_mas", 1e-3),
        "err_Sep": values("separation_err_mas", 1e-3),
        "PA": values("pa_deg"),
        "err_PA": values("pa_err_deg"),
        "Flux_cs": np.full(len(detections), np.nan),
        "err_Flux_cs": np.full(len(detections), np.nan),
        "Flux_mag": values("magnitude"),
        "err_Flux_mag": values("magnitude_err"),
        "Flux_Jy": np.full(len(detections), np.nan),
        "err_Flux_Jy": np.full(len(detections), np.nan),
        "Flux_erg": np.full(len(detections), np.nan),
        "err_Flux_erg": np.full(len(detections), np.nan),
        "Contrast": dmag,
        "err_Contrast": dmag_err,
    }
    columns = [fits.Column("Candidate", "I", array=np.arange(1, len(detections) + 1))]
    for name, unit in _SOURCE_COLUMNS:
        columns.append(fits.Column(name, "D", unit=unit, array=data[name]))
        if name not in _NO_ERROR:
            columns.append(fits.Column(f"err_{name}", "D", unit=unit, array=data[f"err_{name}"]))
    return fits.BinTableHDU.from_columns(columns, name="SOURCE_DETECTION")


__all__ = [
    "MANDATORY",
    "HciCandidate",
    "HciFits",
    "HciFitsError",
    "HciReduction",
    "check_hcifits",
    "read_hcifits",
    "write_hcifits",
]
