"""IRDIS DPI polarimetric reduction: Level 1 beams -> Stokes and polarisation maps (Level 2).

Input: an IRDIS Level 1 product of a DPI sequence (:func:`hcdc.instruments.sphere.irdis.level1.reduce_irdis`
did dark/background, flat, bad pixels, the left/right split into the ordinary (P0, left field,
"wavelength" 0) and extraordinary (P90, right field, 1) beams, the waffle centring of each beam,
the anamorphism correction and the normalisation to ADU/s) and the raw OBJECT files, whose headers
give each file's HWP position (:func:`hcdc.instruments.sphere.irdis.dpi.read_hwp_position`:
``OCS DPI H2RT STOKES`` checked against the encoder ``INS4 DROT3``).

Steps (:func:`reduce_dpi`), common to both recipe versions:

1. the DITs of each OBJECT file are averaged per beam (the HWP does not move within a file); the
   file's derotation angle is the mean of its DITs' ``DEROT`` (deg, the Level 1 value);
2. files in time order are grouped into complete HWP cycles Q+ Q- U+ U-
   (:func:`hcdc.science.polarimetry.group_hwp_cycles`; broken cycles are dropped whole, as IRDAP);
3. per cycle, in the detector frame: double differences and double sums (or double ratios) of
   the Q and U pairs (:func:`hcdc.science.polarimetry.stokes_from_beams`).

**Recipe 1.1 (default, ``instrument_model=True``): model-based correction**
(:func:`_model_based_stokes`, the idea of IRDAP's correction, van Holstein et al. 2020, own code):
per file the parallactic angle, altitude, HWP angle and derotator angle
(:func:`_file_angles`) give the Mueller-matrix model's row of each pair's double difference and
double sum (:mod:`hcdc.instruments.sphere.irdis.mueller`: instrumental polarisation, polarimetric
efficiency and cross-talk, all varying with the angles); each pair's images are turned north up
(counter-clockwise by the pair's image derotation angle, IRDAP's sense; pupil tracking: Level 1
``DEROT``; field tracking: ``INS4 DROT2 POSANG`` + true north) and the linear system
``[DD_Q, DS_Q, DD_U, DS_U] = A (I, Q, U)`` is solved per pixel by least squares over all cycles
(or per cycle, then the median); the result is the Stokes vector incident on the telescope, north
up, IAU sign. Then what polarisation the annulus ``ip_annulus_px`` still shows (the star's own,
or model error) is measured and subtracted (``HCDC STARPOL Q/U``).

**Recipe 1.0 (``instrument_model=False``): ideal instrument**: per cycle the simple annulus IP
correction in the detector frame, then I, Q, U derotated as images and Q, U as vectors (turned
with the image, :func:`hcdc.science.polarimetry.derotate_stokes`) clockwise by the cycle's mean
derotation angle (hcdc's imaging sense). This assumes that the polarisation turns with the image
and the IP is fixed on the detector, which the real geometry (HWP upstream of the derotator,
telescope mirrors) breaks: on data simulated through the model it gives angles tens of degrees
off (docs/polarimetry.md). Kept for reproducibility.

Finally: mean (or median) over the cycles (1.0), PI, DoLP, AoLP and the azimuthal Qφ, Uφ about
the star (:mod:`hcdc.science.polarimetry.maps`).

Product (``dpi_stokes.fits``): primary ``(3, n, n)`` cube of Stokes I, Q, U (FITS ``STOKES`` axis
1, 2, 3) in ADU/s, extensions ``Q_PHI``, ``U_PHI``, ``PI`` (ADU/s), ``DOLP`` (fraction), ``AOLP``
(deg east of north), ``CYCLES`` (one row per HWP cycle: files, derotation angle, IP per pair:
measured in the annulus (1.0) or the model's with its efficiency ``EFF_Q/U`` (1.1)) and
``FILES`` (every OBJECT file: HWP position, derotation, cycle or dropped); celestial WCS on every
image (north up, east left, star on pixel ``(n//2, n//2)``). Previews: PNGs of Qφ, Uφ, PI and I.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from scipy.stats import circmean

import hcdc
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.constants import header_value
from hcdc.instruments.sphere.irdis import mueller
from hcdc.instruments.sphere.irdis.dpi import HWP_ENCODER_OFFSET_DEG, is_dpi, read_hwp_position
from hcdc.instruments.sphere.irdis.level1 import Level1Error, Level1Product, read_level1
from hcdc.science.calibration import timing
from hcdc.science.geometry import derotate
from hcdc.science.polarimetry import (
    angle_of_linear_polarisation,
    azimuthal_stokes,
    correct_instrumental_polarisation,
    degree_of_linear_polarisation,
    derotate_stokes,
    group_hwp_cycles,
    polarised_intensity,
    stokes_from_beams,
)
from hcdc.science.postprocessing.previews import plot_image
from hcdc.science.postprocessing.products import celestial_wcs_cards

__all__ = [
    "DPI_PRODUCT",
    "RECIPE_NAME",
    "DPIError",
    "DPIOptions",
    "DPIProduct",
    "read_dpi_product",
    "reduce_dpi",
    "summary",
]

RECIPE_NAME = "hcdc.level2.irdis_dpi"
DPI_PRODUCT = "dpi_stokes.fits"
MAP_EXTENSIONS = ("Q_PHI", "U_PHI", "PI", "DOLP", "AOLP")


class DPIError(Level1Error):
    """Bad DPI input (message names the file and the reason)."""


@dataclass
class DPIOptions:
    """Parameters of :func:`reduce_dpi` (recorded in the product's provenance header).

    ``method``: ``double_difference`` or ``double_ratio``. ``ip_annulus_px``: (inner, outer) radii
    in px of the annulus where the instrumental polarisation is measured (on the stellar halo,
    outside the coronagraph mask and inside the disc); ``None`` skips the IP correction.
    ``combine``: mean or median over the HWP cycles. ``previews``: write the PNGs.
    ``instrument_model`` (recipe 1.1, default): the **model-based correction** of
    :func:`_model_based_stokes` (Mueller-matrix model of
    :mod:`hcdc.instruments.sphere.irdis.mueller`; the annulus then measures only what the model
    leaves, e.g. the star's own polarisation, in the sky frame). ``False`` (recipe 1.0): the
    ideal-instrument reduction (annulus IP in the detector frame, Stokes turned with the image).
    """

    method: Literal["double_difference", "double_ratio"] = "double_difference"
    ip_annulus_px: tuple[float, float] | None = (10.0, 18.0)
    combine: Literal["mean", "median"] = "mean"
    previews: bool = True
    instrument_model: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DPIProduct:
    """A DPI product read back: Stokes maps (ADU/s), polarisation maps, tables and header."""

    i: np.ndarray
    q: np.ndarray
    u: np.ndarray
    q_phi: np.ndarray
    u_phi: np.ndarray
    pi: np.ndarray
    dolp: np.ndarray
    aolp: np.ndarray
    cycles: Table
    files: Table
    header: fits.Header


Progress = Callable[[str, int, int], None]


def _hwp_positions(
    level1: Level1Product, raw_paths: Sequence[str | Path], headers: dict[str, fits.Header] | None = None
) -> dict[str, str]:
    """HWP position of every OBJECT file of the Level 1 product, from the raw headers (by name);
    the headers are stored in ``headers`` when given."""
    by_name = {Path(p).name: Path(p) for p in raw_paths}
    positions: dict[str, str] = {}
    for name in dict.fromkeys(str(n).strip() for n in level1.frames["FILE"]):
        path = by_name.get(name)
        if path is None:
            raise DPIError(f"{name}: OBJECT file of the Level 1 product is not among the raw files given")
        try:
            header = fits.getheader(path, 0)
        except (OSError, ValueError) as exc:
            raise DPIError(f"{path}: not a readable FITS file ({exc})") from exc
        if not is_dpi(header):
            raise DPIError(f"{path}: not an IRDIS DPI file (DPR TECH without POLARIMETRY, INS1 MODE not DPI)")
        try:
            positions[name] = read_hwp_position(header, path)
        except ValueError as exc:
            raise DPIError(str(exc)) from exc
        if headers is not None:
            headers[name] = header
    return positions


def _file_beams(level1: Level1Product) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per OBJECT file in time order: name, the DIT-averaged beams ``(files, 2, n, n)`` and the
    mean derotation angle (deg)."""
    if level1.cube.shape[0] != 2:
        raise DPIError(f"Level 1 cube has {level1.cube.shape[0]} fields; DPI needs the two beams")
    names = [str(n).strip() for n in level1.frames["FILE"]]
    mjd = np.asarray(level1.frames["MJD"], dtype=float)
    order = sorted(dict.fromkeys(names), key=lambda n: mjd[names.index(n)])
    beams, angles = [], []
    for name in order:
        rows = np.array([k for k, n in enumerate(names) if n == name])
        beams.append(np.nanmean(level1.cube[:, rows], axis=1))
        angles.append(_mean_angle(level1.derot[rows]))
    return order, np.stack(beams), np.array(angles)


def _mean_angle(angles_deg: np.ndarray) -> float:
    """Circular mean (deg, in [0, 360)) of angles that may straddle 0/360."""
    return float(circmean(np.asarray(angles_deg, dtype=float), high=360.0, low=0.0))


@dataclass
class FileAngles:
    """Per OBJECT file (time order) the angles of the instrument model (deg) and the image
    derotation angle (deg, turned **counter-clockwise** to put north up, IRDAP's sense), plus
    the model parameters of the sequence."""

    parang: np.ndarray
    altitude: np.ndarray
    hwp: np.ndarray
    derotator: np.ndarray
    image_derot: np.ndarray
    tracking: str
    params: mueller.ModelParameters


def _header_mean(header: fits.Header, begin: str, end: str, path: str) -> float:
    """Circular mean (deg) of a BEGIN/START and END keyword pair (END optional)."""
    first = header_value(header, f"ESO {begin} BEGIN", None)
    if first is None:
        first = header_value(header, f"ESO {begin} START", None)
    if first is None:
        raise DPIError(f"{path}: no {begin} BEGIN/START keyword (needed by the instrument model)")
    last = header_value(header, f"ESO {end} END", first)
    return _mean_angle(np.array([float(first), float(last)]))


def _file_angles(level1: Level1Product, names: list[str], headers: dict[str, fits.Header]) -> FileAngles:
    """The model's angles per OBJECT file: parallactic angle (mean over the file's DITs, Level 1),
    altitude at the DITs' mid-times from the pointing (``INS4 DROT2 RA/DEC``), HWP angle
    (``INS4 DROT3`` - 152.15), derotator angle (``INS4 DROT2`` BEGIN/END, plus half the pupil
    offset in pupil tracking) and the image derotation angle (pupil: Level 1 ``DEROT``, i.e.
    parallactic angle + 135.99 + true north; field: ``INS4 DROT2 POSANG`` + true north).
    Raises :class:`DPIError` naming the file on a missing keyword or mixed tracking modes."""
    frame_names = [str(n).strip() for n in level1.frames["FILE"]]
    mjd = np.asarray(level1.frames["MJD"], dtype=float)
    tracking_modes = {str(header_value(headers[n], "ESO INS4 COMB ROT", "")).strip().upper() for n in names}
    if len(tracking_modes) != 1 or not tracking_modes <= {"PUPIL", "FIELD"}:
        raise DPIError(
            f"{names[0]}: INS4 COMB ROT must be PUPIL or FIELD, the same for all files; "
            f"got {sorted(tracking_modes)}"
        )
    tracking = tracking_modes.pop()
    first = headers[names[0]]
    try:
        params = mueller.model_parameters(
            str(header_value(first, "ESO INS1 FILT ID", "")), str(first.get("DATE-OBS", ""))[:10]
        )
    except ValueError as exc:
        raise DPIError(f"{names[0]}: {exc}") from exc
    out: dict[str, list[float]] = {k: [] for k in ("p", "a", "h", "d", "r")}
    for name in names:
        header = headers[name]
        rows = np.array([k for k, n in enumerate(frame_names) if n == name])
        try:
            ra, dec = sc.read_pointing(header)
        except KeyError as exc:
            raise DPIError(f"{name}: {exc}") from exc
        alt = timing.altitude_azimuth_airmass(
            Time(mjd[rows], format="mjd", scale="utc"), ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG
        )[0]
        out["p"].append(_mean_angle(level1.parang[rows]))
        out["a"].append(float(np.mean(alt)))
        out["h"].append(
            (_header_mean(header, "INS4 DROT3", "INS4 DROT3", name) - HWP_ENCODER_OFFSET_DEG) % 180.0
        )
        drot2 = _header_mean(header, "INS4 DROT2", "INS4 DROT2", name)
        out["d"].append(float(mueller.derotator_angle(drot2, tracking)))
        if tracking == "PUPIL":
            out["r"].append(_mean_angle(level1.derot[rows]))
        else:
            posang = float(header_value(header, "ESO INS4 DROT2 POSANG", 0.0))
            out["r"].append((posang + mueller.TRUE_NORTH_DEG) % 360.0)
    return FileAngles(*(np.array(out[k]) for k in "pahdr"), tracking=tracking, params=params)


def _model_based_stokes(
    beams: np.ndarray,
    angles: FileAngles,
    cycles: list[tuple[int, int, int, int]],
    names: list[str],
    opts: DPIOptions,
    where: str,
    report: Progress,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray, dict[str, Any]]:
    """Model-based correction (the idea of IRDAP's, van Holstein et al. 2020 Sect. 5; own code).

    Per HWP cycle: the double differences and double sums of the Q and U pairs in the detector
    frame (:func:`~hcdc.science.polarimetry.stokes_from_beams`), each pair's images turned
    north up with the pair's mean image derotation angle (counter-clockwise, IRDAP's sense, as
    images only: the Stokes frame is the sky's, in the model); the model gives each pair's double-difference
    row ``X`` and double-sum row ``X_S``
    (:func:`~hcdc.instruments.sphere.irdis.mueller.double_difference_rows`),
    so that per pixel ``[DD_Q, DS_Q, DD_U, DS_U] = A (I, Q, U)`` with ``A`` (4 x 3) the Q/U
    columns' cross-talk and efficiency and the I column the instrumental polarisation. The
    system is solved per pixel in the least-squares sense over **all** cycles together
    (``combine = mean``) or per cycle then the median (``median``). The result is the Stokes
    vector incident on the telescope, north up, in IAU convention. Then, when ``ip_annulus_px``
    is set, what polarisation the annulus still shows (stellar or a model error) is subtracted.

    Returns I, Q, U, the cycle rows (model IP and efficiency per pair), the per-file image
    derotation angles and header cards.
    """
    per_cycle_a, per_cycle_y, rows = [], [], []
    for c, idx in enumerate(cycles):
        report("HWP cycles", c, len(cycles))
        cycle = np.nan_to_num(beams[list(idx)], nan=0.0)  # (4, 2, n, n)
        st = stokes_from_beams(cycle, opts.method)
        images, matrix, info = [], [], {}
        for pair, (dd, ds), (k_plus, k_minus) in (
            ("Q", (st.q, st.i_q), (idx[0], idx[1])),
            ("U", (st.u, st.i_u), (idx[2], idx[3])),
        ):
            turn = _mean_angle(angles.image_derot[[k_plus, k_minus]])
            # counter-clockwise by the derotation angle (IRDAP's sense) = derotate by its negative
            stack = derotate(np.stack([np.nan_to_num(dd), ds]), [-turn, -turn], fill_value=0.0)
            images.extend(stack)
            rows_pm = [
                mueller.beam_rows(
                    angles.parang[k], angles.altitude[k], angles.hwp[k], angles.derotator[k], angles.params
                )
                for k in (k_plus, k_minus)
            ]
            x_dd, x_ds = mueller.double_difference_rows(*rows_pm)
            matrix.extend([x_dd[:3], x_ds[:3]])
            info[f"IP_{pair}"] = float(x_dd[0] / x_ds[0])
            info[f"EFF_{pair}"] = float(np.hypot(x_dd[1], x_dd[2]) / x_ds[0])
            info[f"DEROT_{pair}"] = turn
        a = np.array(matrix)  # (4, 3)
        per_cycle_a.append(a)
        per_cycle_y.append(np.stack(images))  # (4, n, n)
        rows.append(
            {
                "CYCLE": c,
                "FILES": ",".join(names[k] for k in idx),
                "DEROT": _mean_angle(angles.image_derot[list(idx)]),
                "DEROT_SPREAD": float(np.ptp(np.unwrap(np.radians(angles.image_derot[list(idx)]))))
                * 180.0
                / np.pi,
            }
            | info
        )
    report("HWP cycles", len(cycles), len(cycles))
    shape = per_cycle_y[0].shape[1:]
    if opts.combine == "mean":
        a_all = np.concatenate(per_cycle_a)
        y_all = np.concatenate(per_cycle_y).reshape(len(a_all), -1)
        stokes = np.linalg.lstsq(a_all, y_all, rcond=None)[0].reshape((3, *shape))
    else:
        solved = [
            np.linalg.lstsq(a, y.reshape(4, -1), rcond=None)[0]
            for a, y in zip(per_cycle_a, per_cycle_y, strict=True)
        ]
        stokes = np.median(np.stack(solved), axis=0).reshape((3, *shape))
    i, q, u = stokes
    cards: dict[str, Any] = {
        "MODEL": (angles.params.filter_model, "Mueller model (vH+2020)"),
        "TRACKING": (angles.tracking, "INS4 COMB ROT"),
    }
    if opts.ip_annulus_px is not None:
        try:
            ip = correct_instrumental_polarisation(i, q, u, *opts.ip_annulus_px)
        except ValueError as exc:
            raise DPIError(f"{where}: {exc}") from exc
        q, u = ip.q, ip.u
        cards["STARPOL Q"] = (float(ip.p_q), "residual q, annulus")
        cards["STARPOL U"] = (float(ip.p_u), "residual u, annulus")
    return i, q, u, rows, angles.image_derot, cards


def reduce_dpi(
    level1_dir: str | Path,
    raw_paths: Sequence[str | Path],
    out_dir: str | Path,
    options: DPIOptions | None = None,
    progress: Progress | None = None,
) -> Path:
    """Reduce the Level 1 product of a DPI sequence to Stokes/polarisation maps in ``out_dir``.

    ``raw_paths``: the raw files of the sequence (at least its OBJECT files, matched by name to the
    ``FILE`` column of the Level 1 frames). Returns the product path (``out_dir/dpi_stokes.fits``).
    Raises :class:`DPIError` naming the file and the reason on bad input (not DPI, HWP keywords
    missing or inconsistent, no complete HWP cycle).
    """
    opts = options or DPIOptions()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report = progress or (lambda stage, done, total: None)
    level1 = read_level1(level1_dir)
    headers: dict[str, fits.Header] = {}
    positions = _hwp_positions(level1, raw_paths, headers)
    names, beams, derot = _file_beams(level1)
    labels = [positions[n] for n in names]
    grouping = group_hwp_cycles(labels)
    if not grouping.cycles:
        raise DPIError(
            f"{level1_dir}: no complete HWP cycle Q+ Q- U+ U- among the {len(names)} OBJECT files "
            f"(positions in time order: {', '.join(labels)})"
        )
    model_info: dict[str, Any] = {}
    if opts.instrument_model:
        angles = _file_angles(level1, names, headers)
        i, q, u, cycle_rows, derot, model_info = _model_based_stokes(
            beams, angles, grouping.cycles, names, opts, str(level1_dir), report
        )
        return _finish(
            out_dir, i, q, u, names, labels, derot, grouping, cycle_rows, level1, opts, started, model_info
        )
    cycles_i, cycles_q, cycles_u, cycle_rows = [], [], [], []
    for c, idx in enumerate(grouping.cycles):
        report("HWP cycles", c, len(grouping.cycles))
        cycle = np.nan_to_num(beams[list(idx)], nan=0.0)  # (4, 2, n, n); masked pixels -> 0
        stokes = stokes_from_beams(cycle, opts.method)
        q, u = np.nan_to_num(stokes.q), np.nan_to_num(stokes.u)
        p_q = p_u = 0.0
        if opts.ip_annulus_px is not None:
            try:
                ip = correct_instrumental_polarisation(stokes.i, q, u, *opts.ip_annulus_px)
            except ValueError as exc:
                raise DPIError(f"{level1_dir}: cycle {c}: {exc}") from exc
            q, u, p_q, p_u = ip.q, ip.u, ip.p_q, ip.p_u
        angle = _mean_angle(derot[list(idx)])
        cycles_i.append(derotate(stokes.i[None], [angle], fill_value=0.0)[0])
        q_r, u_r = derotate_stokes(q[None], u[None], [angle], fill_value=0.0)
        cycles_q.append(q_r[0])
        cycles_u.append(u_r[0])
        cycle_rows.append(
            {
                "CYCLE": c,
                "FILES": ",".join(names[k] for k in idx),
                "DEROT": angle,
                "DEROT_SPREAD": float(np.ptp(np.unwrap(np.radians(derot[list(idx)])))) * 180.0 / np.pi,
                "IP_Q": p_q,
                "IP_U": p_u,
            }
        )
    report("HWP cycles", len(grouping.cycles), len(grouping.cycles))
    combine = np.mean if opts.combine == "mean" else np.median
    i, q, u = (combine(np.stack(a), axis=0) for a in (cycles_i, cycles_q, cycles_u))
    return _finish(
        out_dir, i, q, u, names, labels, derot, grouping, cycle_rows, level1, opts, started, model_info
    )


def _finish(
    out_dir: str | Path,
    i: np.ndarray,
    q: np.ndarray,
    u: np.ndarray,
    names: list[str],
    labels: list[str],
    derot: np.ndarray,
    grouping: Any,
    cycle_rows: list[dict[str, Any]],
    level1: Level1Product,
    opts: DPIOptions,
    started: str,
    model_info: dict[str, Any],
) -> Path:
    """Polarisation maps from the north-up I, Q, U, then the product and the previews."""
    q_phi, u_phi = azimuthal_stokes(q, u)
    pi = polarised_intensity(q, u)
    with np.errstate(invalid="ignore", divide="ignore"):
        dolp = degree_of_linear_polarisation(i, q, u)
    aolp = angle_of_linear_polarisation(q, u)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cycle_of = {k: c for c, idx in enumerate(grouping.cycles) for k in idx}
    files = Table(
        rows=[(names[k], labels[k], float(derot[k]), cycle_of.get(k, -1)) for k in range(len(names))],
        names=("FILE", "HWP", "DEROT", "CYCLE"),
    )
    files["DEROT"].unit = "deg"
    cycles = Table(rows=cycle_rows)
    for col in ("DEROT", "DEROT_SPREAD"):
        cycles[col].unit = "deg"
    path = out / DPI_PRODUCT
    _write_product(
        path, (i, q, u), (q_phi, u_phi, pi, dolp, aolp), cycles, files, level1, opts, started, model_info
    )
    if opts.previews:
        _write_previews(out, i, q_phi, u_phi, pi)
    return path


def _add_wcs(header: fits.Header, shape: tuple[int, ...], level1: Level1Product) -> None:
    """Celestial WCS (north up, east left, star on the centre pixel) from the pointing that the
    Level 1 product recorded (``HCDC RA``/``HCDC DEC``, J2000 deg); a COMMENT when it has none."""
    ra, dec = level1.header.get("HIERARCH HCDC RA"), level1.header.get("HIERARCH HCDC DEC")
    if ra is None or dec is None:
        header["COMMENT"] = "no pointing in the Level 1 product: no celestial WCS"
        return
    for key, value, text in celestial_wcs_cards(shape[-2:], sc.IRDIS_PIXEL_SCALE_MAS, float(ra), float(dec)):
        header[key] = (value, text)


def _write_product(
    path: Path,
    stokes: tuple[np.ndarray, np.ndarray, np.ndarray],
    maps: tuple[np.ndarray, ...],
    cycles: Table,
    files: Table,
    level1: Level1Product,
    opts: DPIOptions,
    started: str,
    model_info: dict[str, Any] | None = None,
) -> None:
    primary = fits.PrimaryHDU(np.stack(stokes).astype(np.float32))
    h = primary.header
    _add_wcs(h, stokes[0].shape, level1)
    if "CTYPE1" in h:
        h["WCSAXES"] = (3, "RA, Dec, Stokes")
        h["CTYPE3"] = ("STOKES", "FITS Stokes axis: 1 = I, 2 = Q, 3 = U")
        h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = 1.0, 1.0, 1.0
    h["BUNIT"] = ("ADU/s", "Stokes I, Q, U per second of DIT")
    h["PIXSCALE"] = (sc.IRDIS_PIXEL_SCALE_MAS, "[mas/px] plate scale")
    h["HIERARCH HCDC PRODUCT"] = ("IRD_DPI_STOKES", "hcdc product type")
    h["HIERARCH HCDC RECIPE"] = (RECIPE_NAME, "hcdc reduction")
    h["HIERARCH HCDC VERSION"] = (hcdc.__version__, "hcdc version")
    h["HIERARCH HCDC PARAMS"] = (json.dumps(opts.as_dict(), sort_keys=True), "parameters (JSON)")
    h["HIERARCH HCDC START"] = (started, "reduction start (UTC)")
    h["HIERARCH HCDC FILTER"] = (str(level1.header.get("HIERARCH HCDC FILTER", "")), "INS COMB IFLT")
    h["HIERARCH HCDC METHOD"] = (opts.method, "Stokes from the beams")
    h["HIERARCH HCDC NCYCLES"] = (len(cycles), "complete HWP cycles combined")
    for key, (value, text) in (model_info or {}).items():
        h[f"HIERARCH HCDC {key}"] = (value, text)
    h["COMMENT"] = "Stokes sign (IAU): Q > 0 along north-south; U > 0 along 45 deg east of north"
    h["COMMENT"] = "Q_phi = -Q cos 2phi - U sin 2phi, U_phi = Q sin 2phi - U cos 2phi (phi = PA)"
    hdus: list[Any] = [primary]
    units = {"Q_PHI": "ADU/s", "U_PHI": "ADU/s", "PI": "ADU/s", "DOLP": "", "AOLP": "deg"}
    for name, data in zip(MAP_EXTENSIONS, maps, strict=True):
        hdu = fits.ImageHDU(np.asarray(data, dtype=np.float32), name=name)
        _add_wcs(hdu.header, data.shape, level1)
        hdu.header["BUNIT"] = units[name]
        if name == "AOLP":
            hdu.header["COMMENT"] = "angle of linear polarisation, deg east of north, in [0, 180)"
        hdus.append(hdu)
    for name, table in (("CYCLES", cycles), ("FILES", files)):
        hdu = fits.table_to_hdu(table)
        hdu.name = name
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path, overwrite=True)


def _write_previews(out: Path, i: np.ndarray, q_phi: np.ndarray, u_phi: np.ndarray, pi: np.ndarray) -> None:
    # Qphi and Uphi on one colour scale, so that a Uphi "consistent with zero" reads as such.
    lim = float(np.nanpercentile(np.abs(q_phi), 99.5)) or 1.0
    for name, data, title, vmin, vmax in (
        ("q_phi", q_phi, "Q_phi", -lim, lim),
        ("u_phi", u_phi, "U_phi (same scale as Q_phi)", -lim, lim),
        ("pi", pi, "polarised intensity", None, None),
        ("i", i, "Stokes I", None, None),
    ):
        plot_image(
            data,
            out / f"dpi_{name}.png",
            pixel_scale_mas=sc.IRDIS_PIXEL_SCALE_MAS,
            title=title,
            unit="ADU/s",
            cmap="RdBu_r" if vmin is not None else "inferno",
            vmin=vmin,
            vmax=vmax,
        )


def read_dpi_product(path: str | Path) -> DPIProduct:
    """Read ``dpi_stokes.fits`` (or the folder holding it) written by :func:`reduce_dpi`."""
    path = Path(path)
    if path.is_dir():
        path = path / DPI_PRODUCT
    if not path.is_file():
        raise DPIError(f"{path}: no DPI product here")
    with fits.open(path) as hdul:
        cube = np.asarray(hdul[0].data, dtype=float)
        maps = {name: np.asarray(hdul[name].data, dtype=float) for name in MAP_EXTENSIONS}
        cycles = Table.read(hdul["CYCLES"])
        files = Table.read(hdul["FILES"])
        header = hdul[0].header.copy()
    return DPIProduct(
        i=cube[0],
        q=cube[1],
        u=cube[2],
        q_phi=maps["Q_PHI"],
        u_phi=maps["U_PHI"],
        pi=maps["PI"],
        dolp=maps["DOLP"],
        aolp=maps["AOLP"],
        cycles=cycles,
        files=files,
        header=header,
    )


def summary(product: DPIProduct) -> dict[str, Any]:
    """JSON-ready summary of a product: cycles, measured IP, map shape."""
    return {
        "cycles": len(product.cycles),
        "files": len(product.files),
        "dropped_files": int(np.sum(np.asarray(product.files["CYCLE"]) < 0)),
        "ip_q": [float(v) for v in product.cycles["IP_Q"]],
        "ip_u": [float(v) for v in product.cycles["IP_U"]],
        "shape": list(product.q_phi.shape),
        "method": str(product.header.get("HIERARCH HCDC METHOD", "")),
    }
