"""IRDIS astrometric calibration fields: a simulated observation (FITS file, reference list CSV,
truth JSON) and the measurement of plate scale and True North on such a file against a
reference list (:mod:`hcdc.science.calibration.astrometric_field`).

The file: an IRDIS raw-like frame of the two fields side by side (2048 x 1024 px, left field
columns 0-1023), or a single field (1024 x 1024 px), or a cube (its median is measured).
Header keywords read: ``RA`` / ``DEC`` (deg, the tangent point of the reference offsets: the
telescope's pointing), ``INS4 DROT2 MODE`` (field tracking ``SKY`` expected: an astrometric
field is taken with north fixed) and ``INS4 DROT2 POSANG`` (deg), ``INS COMB IFLT`` (filter),
``DATE-OBS`` (epoch).

True North convention (IRDAP's field-tracking one, sphere.md: images are rotated by
``-POSANG - TN`` to put north up): the fitted rotation ``rho`` (``PA_sky = PA_det + rho``) is
``POSANG + TN``, so ``TN = rho - POSANG``. vlt-sphere's SKY branch also adds the parallactic
angle (sphere.md notes it, unchecked): that is a convention of that pipeline's derotation, not
of this measurement, which needs only a field-tracking image and its POSANG.

The reference list (CSV): columns ``ra_deg`` and ``dec_deg`` (ICRS, deg, at the epoch of the
observation: proper motions are the list's business), optional ``id``, ``mag``, ``pos_err_mas``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration.astrometric_field import AstrometryError, measure_field, tangent_offsets
from hcdc.science.checksums import sha256_file
from hcdc.science.simulation.astrometric_field import FieldSpec, simulate_field

__all__ = [
    "DPR_TYPE",
    "AstrometricFieldError",
    "measure_irdis_field",
    "read_reference_list",
    "simulate_irdis_astrometric_field",
]

#: DPR TYPE written on the simulated field, and the one ingest classifies as ``ASTROMETRY``
#: (:data:`hcdc.instruments.sphere.metadata.FILE_CLASS_COMMON`). Not seen in a real header here
#: (shared/data holds none of an astrometric field); the evidence (docs/monitoring.md, "Which DPR
#: TYPE"): spherical's science filter excludes ``DPR_TYPE == 'OBJECT,ASTROMETRY'`` (sphere.md
#: a.2); an IRDIS IDL reduction script selects astrometric frames by ``DPR CATG == 'CALIB'`` and
#: this type (a commented-out line); a public RDI reference-library script for SPHERE cubes
#: replaces an ``OBJECT`` keyword equal to ``'OBJECT,ASTROMETRY'`` by ``OBS TARG NAME`` -- and
#: calibration templates write OBJECT = DPR TYPE (the real WAVE,LAMP headers here do). Files of
#: another type are still measured when they point into a registered field in field tracking
#: (:func:`hcdc.pipeline.operations.astrometry.recognised_by_position`).
DPR_TYPE = "OBJECT,ASTROMETRY"


class AstrometricFieldError(ValueError):
    """The file or reference list cannot be measured (the message names it and says why)."""


def simulate_irdis_astrometric_field(
    out_dir: str | Path,
    spec: FieldSpec | None = None,
    *,
    seed: int = 1,
    posang_deg: float = 0.0,
    true_north_deg: float = sc.TRUE_NORTH_DEG,
    date_obs: str = "2026-03-15T01:23:45.000",
    filter_name: str = "DB_H23",
    dpr_type: str = DPR_TYPE,
    dpr_catg: str = "CALIB",
) -> dict[str, Path]:
    """Write ``astrometric_field.fits`` (2048 x 1024, the same field in both halves: the right
    one 1.5 px lower), ``reference_list.csv`` and ``simulation_truth.json`` into ``out_dir``.
    The true rotation of ``spec`` is replaced by ``posang_deg + true_north_deg``; the truth JSON
    holds ``true_north_deg``, ``plate_scale_mas`` and the whole spec. ``dpr_type`` / ``dpr_catg``:
    the DPR keywords written (e.g. ``OBJECT`` / ``SCIENCE``, a field whose type is not the assumed
    one). Returns the three paths."""
    spec = spec or FieldSpec()
    rotation = posang_deg + true_north_deg
    spec = FieldSpec(**{**spec.as_dict(), "rotation_deg": rotation, "shape": (1024, 1024)})
    rng = np.random.default_rng(seed)
    left = simulate_field(spec, rng)
    right_spec = FieldSpec(
        **{
            **spec.as_dict(),
            "pointing_offset_mas": (
                spec.pointing_offset_mas[0],
                spec.pointing_offset_mas[1] + 1.5 * spec.scale_mas,
            ),
        }
    )
    same_stars = (left["truth"]["east_mas"], left["truth"]["north_mas"], left["truth"]["mag"])
    right = simulate_field(right_spec, np.random.default_rng(seed + 10_000), stars=same_stars)
    frame = np.concatenate([left["image"], right["image"]], axis=1)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cards: list[tuple[str, Any, str]] = [
        ("TELESCOP", "ESO-VLT-U3", "ESO Telescope Name"),
        ("INSTRUME", "SPHERE", "Instrument used."),
        ("OBJECT", "NGC3603 astrometric field (simulated)", "Target"),
        ("RA", spec.ra0_deg, "[deg] pointing, tangent point"),
        ("DEC", spec.dec0_deg, "[deg] pointing"),
        ("DATE-OBS", date_obs, "Observing date"),
        ("HIERARCH ESO DPR CATG", dpr_catg, "Observation category"),
        ("HIERARCH ESO DPR TYPE", dpr_type, "Observation type (assumed)"),
        ("HIERARCH ESO DPR TECH", "IMAGE", "Observation technique"),
        ("HIERARCH ESO SEQ ARM", "IRDIS", "Name of the arm used"),
        ("HIERARCH ESO INS COMB IFLT", filter_name, "IR filter combination"),
        ("HIERARCH ESO INS4 DROT2 MODE", "SKY", "Derotator mode"),
        ("HIERARCH ESO INS4 DROT2 POSANG", posang_deg, "[deg] Derotator PA"),
        ("HIERARCH ESO DET SEQ1 DIT", 4.0, "[s] Integration time"),
        ("HIERARCH ESO DET NDIT", 1, "Number of DITs"),
        ("HIERARCH HCDC SIMULATED", True, "simulated field"),
    ]
    truth = {
        "true_north_deg": true_north_deg,
        "posang_deg": posang_deg,
        "rotation_deg": rotation,
        "plate_scale_mas": spec.scale_mas,
        "anamorphism_xy": list(spec.anamorphism_xy),
        "seed": seed,
        "left": left["truth"],
    }
    return write_simulated_field(folder, "astrometric_field.fits", frame, cards, left["catalogue"], truth)


def write_simulated_field(
    folder: Path,
    fits_name: str,
    image: np.ndarray,
    cards: list[tuple[str, Any, str]],
    catalogue: list[dict[str, Any]],
    truth: dict[str, Any],
) -> dict[str, Path]:
    """Write a simulated field's three files into ``folder``: ``fits_name`` (``image`` with the
    header ``cards``, (key, value, comment)), ``reference_list.csv`` (``catalogue``'s rows, RA/Dec
    in deg to 1e-10) and ``simulation_truth.json`` (``truth``). Returns their paths (keys
    ``fits``, ``catalogue``, ``truth``)."""
    header = fits.Header()
    for key, value, comment in cards:
        header[key] = (value, comment)
    fits_path = folder / fits_name
    fits.PrimaryHDU(image, header).writeto(fits_path, overwrite=True)
    csv_path = folder / "reference_list.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "ra_deg", "dec_deg", "mag", "pos_err_mas"])
        writer.writeheader()
        for row in catalogue:
            writer.writerow({**row, "ra_deg": f"{row['ra_deg']:.10f}", "dec_deg": f"{row['dec_deg']:.10f}"})
    truth_path = folder / "simulation_truth.json"
    truth_path.write_text(json.dumps(truth, indent=1))
    return {"fits": fits_path, "catalogue": csv_path, "truth": truth_path}


def read_reference_list(path: str | Path) -> dict[str, np.ndarray]:
    """``ra_deg``, ``dec_deg`` (and ``id`` when given) of a reference-list CSV. Raises
    AstrometricFieldError naming the file and the line for a missing column or a bad value."""
    path = Path(path)
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise AstrometricFieldError(f"{path}: cannot read the reference list ({exc.strerror})") from exc
    with handle:
        reader = csv.DictReader(handle)
        columns = {c.strip() for c in (reader.fieldnames or [])}
        if not {"ra_deg", "dec_deg"} <= columns:
            raise AstrometricFieldError(
                f"{path}: a reference list needs columns ra_deg and dec_deg "
                f"(has: {', '.join(sorted(columns)) or 'none'})"
            )
        ra, dec, ids = [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                r, d = float(row["ra_deg"]), float(row["dec_deg"])
            except (TypeError, ValueError) as exc:
                raise AstrometricFieldError(f"{path}, line {line}: ra_deg/dec_deg must be numbers") from exc
            if not (0.0 <= r < 360.0 and -90.0 <= d <= 90.0):
                raise AstrometricFieldError(f"{path}, line {line}: position out of range ({r}, {d})")
            ra.append(r)
            dec.append(d)
            ids.append((row.get("id") or f"line{line}").strip())
    if not ra:
        raise AstrometricFieldError(f"{path}: the reference list has no star")
    return {"ra_deg": np.array(ra), "dec_deg": np.array(dec), "id": np.array(ids)}


def _header_float(header: fits.Header, key: str, path: Path) -> float:
    value = header.get(key)
    if value is None:
        raise AstrometricFieldError(f"{path}: header keyword {key} is missing")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise AstrometricFieldError(f"{path}: header keyword {key} is not a number ({value!r})") from exc


def measure_irdis_field(
    path: str | Path,
    catalogue: str | Path,
    *,
    channel: str = "left",
    expected_scale_mas: float = sc.IRDIS_PIXEL_SCALE_MAS,
    expected_true_north_deg: float = sc.TRUE_NORTH_DEG,
    anamorphism_xy: tuple[float, float] | None = sc.IRDIS_ANAMORPHISM_XY,
    fwhm_px: float = 3.3,
    nsigma: float = 8.0,
    min_stars: int = 6,
    bootstrap: int = 300,
    instrument_offset_deg: float = 0.0,
    affine: bool = False,
) -> dict[str, Any]:
    """Measure plate scale (mas/px, of anamorphism-corrected images when ``anamorphism_xy`` is
    given) and True North (deg, module convention) on one IRDIS field. Returns the
    measurement (JSON-ready): ``true_north_deg``, ``true_north_err_deg``, ``plate_scale_mas``,
    ``plate_scale_err_mas``, the fit (formal and bootstrap errors, stars matched, used,
    residual rms), ``epoch``, ``filter``, ``file``, ``sha256``, ``catalogue`` and its sha256.
    Raises AstrometricFieldError naming the file for an unreadable file, a missing keyword, a
    pupil-tracking frame, or too few stars detected or matched. ``instrument_offset_deg``: the
    arm's rotation relative to IRDIS (0 here; the IFS measurement,
    :func:`hcdc.instruments.sphere.ifs.astrometric_field.measure_ifs_field`, passes -100.48):
    ``TN = rho - POSANG - instrument_offset_deg``. ``affine``: add ``"affine"``, the general
    linear fit of :func:`hcdc.science.calibration.astrometric_field.fit_affine` (scales along x
    and y, anamorphism, skew) on the offsets as fitted -- with ``anamorphism_xy=None`` the
    detector's own anamorphism, with the correction what it leaves."""
    path, catalogue = Path(path), Path(catalogue)
    if channel not in ("left", "right"):
        raise AstrometricFieldError(f"channel must be left or right; got {channel!r}")
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            data = hdul[0].data
            if data is None and len(hdul) > 1:
                data, header = hdul[1].data, hdul[0].header + hdul[1].header
            data = None if data is None else np.asarray(data, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise AstrometricFieldError(f"{path}: not a readable FITS file ({exc})") from exc
    if data is None or data.ndim not in (2, 3):
        raise AstrometricFieldError(f"{path}: no 2-D image or cube in the file")
    if data.ndim == 3:
        data = np.nanmedian(data, axis=0)
    ny, nx = data.shape
    if nx == 2 * ny:
        data = data[:, :ny] if channel == "left" else data[:, ny:]
    mode = str(header.get("HIERARCH ESO INS4 DROT2 MODE", "")).strip().upper()
    if mode and mode != "SKY":
        raise AstrometricFieldError(
            f"{path}: derotator mode {mode!r}; True North is measured on a field-tracking (SKY) frame"
        )
    posang = float(header.get("HIERARCH ESO INS4 DROT2 POSANG", 0.0) or 0.0)
    ra0 = _header_float(header, "RA", path)
    dec0 = _header_float(header, "DEC", path)
    reference = read_reference_list(catalogue)
    east, north = tangent_offsets(reference["ra_deg"], reference["dec_deg"], ra0, dec0)
    try:
        result = measure_field(
            data,
            np.column_stack([east, north]),
            expected_scale_mas=expected_scale_mas,
            expected_rotation_deg=posang + expected_true_north_deg + instrument_offset_deg,
            anamorphism_xy=anamorphism_xy or (1.0, 1.0),
            fwhm_px=fwhm_px,
            nsigma=nsigma,
            min_stars=min_stars,
            bootstrap=bootstrap,
            affine=affine,
        )
    except AstrometryError as exc:
        raise AstrometricFieldError(f"{path}: {exc}") from exc
    solution = result["solution"]
    date_obs = str(header.get("DATE-OBS", "")).strip()
    try:
        epoch = dt.date.fromisoformat(date_obs[:10]) if date_obs else None
    except ValueError:
        epoch = None
    true_north = (solution.rotation_deg - posang - instrument_offset_deg + 180.0) % 360.0 - 180.0
    stars = result["stars"]
    for star in stars:
        star["reference_id"] = str(reference["id"][star["reference"]])
    return {
        "file": str(path),
        "sha256": sha256_file(path),
        "catalogue": str(catalogue),
        "catalogue_sha256": sha256_file(catalogue),
        "channel": channel,
        "epoch": epoch.isoformat() if epoch else None,
        "filter": str(header.get("HIERARCH ESO INS COMB IFLT", "")).strip() or None,
        "posang_deg": posang,
        "anamorphism_xy": list(anamorphism_xy) if anamorphism_xy else None,
        "true_north_deg": true_north,
        "true_north_err_deg": solution.rotation_err_deg,
        "plate_scale_mas": solution.scale_mas,
        "plate_scale_err_mas": solution.scale_err_mas,
        "fit": {k: v for k, v in solution.as_dict().items() if k != "residuals_mas"},
        "detected": result["detected"],
        "reference_stars": int(len(reference["ra_deg"])),
        "stars": stars,
        **({"affine": result["affine"]} if affine else {}),
    }
