"""ZIMPOL reduction: raw frames -> calibrated, re-ordered, de-dithered, centred images per camera.

Steps (per camera, CAM1 and CAM2 reduced independently, as ESO QC / jmilli treat them):

1. **Masters** from the associated calibrations of the same read-out mode: master bias (median
   of all BIAS frames), dark current (``(median DARK - bias) / DIT`` in ADU/s; optional), flat
   (``median FLAT,LAMP - bias - dark``, normalised to median 1 per ADC half over the illuminated
   rows). Bad pixels: flat outside [0.5, 1.5] (dead pixels) or hot in the dark current
   (:func:`hcdc.science.calibration.badpixels.hot_pixels`).
2. **Frame calibration**: subtract the bias, the change of each frame's overscan level from the
   bias's (per ADC half), the dark current x DIT; keep the data columns (pre/overscans dropped);
   divide by the flat; bad pixels NaN.
3. **Stripe-mask re-ordering** (:mod:`.raw`): imaging keeps the open rows; polarimetry splits
   each frame into modulation states A and B by its phase (0/pi) and averages the frames of a
   file per state (both phases: each state measured by both rows). Bad pixels are filled from
   good neighbours (:func:`~hcdc.science.calibration.badpixels.correct_bad_pixels`); column pairs
   are binned to square 7.2 mas pixels; values divided by the DIT (ADU/s).
4. **De-dithering** by the header offsets (``INS3 POS3/POS4`` CAM1, ``POS6/POS7`` CAM2, physical
   pixels, halved on the reduced grid) and **centring**: a 2-D Gaussian fit of the star on the
   de-dithered combination (:func:`~hcdc.science.calibration.centering.center_psf`), then one
   spline shift per file puts the star on :func:`hcdc.science.geometry.frame_center`.
5. **Angles**: per frame, parallactic angle at mid-DIT (DATE-OBS, DET FRAM UTC, NDIT, DET DIT1,
   DET DITDELAY; pointing INS4 DROT2 RA/DEC); derotation angle ``parang + 135.99 + (-1.75)`` in
   pupil tracking (ELEV) and ``POSANG + (-1.75)`` in field tracking (SKY). ASSUMPTION: the IRDIS
   pupil offset and True North (vlt-sphere) are used for ZIMPOL; no ZIMPOL value is in the
   reference. The pre-2016-07-12 derotator correction is not applied. Frame ``k`` turned
   counter-clockwise by ``DEROT[k]`` is north up (vlt-sphere/VIP/IRDAP; ``HCDC ROTSENSE = 'CCW'``
   on the Level 1 product, docs/conventions.md).

Outputs: :func:`reduce_imaging` writes a Level 1 product read by ``l2-postprocess``
(:func:`level1_cube`: cube (cameras, frames, y, x) in ADU/s, DEROT, one wavelength per camera,
PSF = the median star of each camera, plate scale 7.2 mas); :func:`reduce_polarimetry` writes one
Level 2 FITS per camera with I, Q, U, Q_phi, U_phi, PI, DoLP, AoLP (celestial WCS) from the double
difference (or ratio) of the half-wave-plate cycles, the instrumental polarisation measured in an
annulus and removed (:func:`hcdc.science.polarimetry.correct_instrumental_polarisation`), each cycle
derotated with its Stokes vector (:func:`hcdc.science.polarimetry.rotate_stokes`).

Polarimetric beams: for CAM1 state A = ordinary ``(I + S)/2`` and B = extraordinary; CAM2 sees
the other output of the polarising beam splitter, so its roles are swapped (:mod:`.raw`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from hcdc.instruments.base import Level1Cube
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.zimpol import constants as zc
from hcdc.instruments.sphere.zimpol import raw
from hcdc.science.calibration import timing
from hcdc.science.calibration.badpixels import correct_bad_pixels, hot_pixels
from hcdc.science.calibration.centering import center_psf
from hcdc.science.geometry import frame_center, rotate_frame, shift_frame
from hcdc.science.orientation import ROTSENSE_CCW, rotation_from_derotation
from hcdc.science.polarimetry import (
    HWP_STOKES,
    angle_of_linear_polarisation,
    azimuthal_stokes,
    correct_instrumental_polarisation,
    degree_of_linear_polarisation,
    group_hwp_cycles,
    polarised_intensity,
    rotate_stokes,
    stokes_from_beams,
)
from hcdc.science.postprocessing.products import celestial_wcs_cards

__all__ = [
    "IMAGING_RECIPE",
    "LEVEL1_FILE",
    "POLARIMETRY_RECIPE",
    "ZimpolError",
    "ZimpolLevel1",
    "frame_angles",
    "is_level1_product",
    "level1_cube",
    "read_level1_zimpol",
    "reduce_imaging",
    "reduce_polarimetry",
    "sort_files",
]

IMAGING_RECIPE = "level1-zimpol"
POLARIMETRY_RECIPE = "zimpol-polarimetry"
LEVEL1_FILE = "zimpol_level1.fits"
#: Half size (px) of the PSF stamp written with the imaging Level 1.
PSF_HALF_SIZE = 16


class ZimpolError(ValueError):
    """A ZIMPOL reduction cannot proceed; the message names the file and the reason."""


# ----------------------------------------------------------------------------------------------
# Reading and sorting raw files


@dataclass
class ZimpolRaw:
    """One raw ZIMPOL file: primary header and the (ndit, rows, columns) cube of each camera."""

    path: Path
    header: fits.Header
    cubes: dict[int, np.ndarray]

    def keyword(self, key: str, default: Any = None) -> Any:
        return self.header.get(f"HIERARCH ESO {key}", default)

    @property
    def dpr_type(self) -> str:
        return str(self.keyword("DPR TYPE", "")).strip()

    @property
    def readout(self) -> str:
        return str(self.keyword("DET READ CURNAME", "")).strip()

    @property
    def dit(self) -> float:
        return float(self.keyword("DET DIT1", self.header.get("EXPTIME", 0.0)))

    @property
    def filters(self) -> tuple[str, str]:
        return tuple(str(self.keyword(zc.camera_filter(c), "")).strip() for c in zc.CAMERAS)  # type: ignore[return-value]

    @property
    def stokes(self) -> str:
        return str(self.keyword(zc.STOKES_KEYWORD, "")).strip()

    def dither(self, camera: int) -> tuple[float, float]:
        kx, ky = zc.DITHER_KEYWORDS[camera]
        return float(self.keyword(kx, 0.0) or 0.0), float(self.keyword(ky, 0.0) or 0.0)


def read_raw(path: str | Path) -> ZimpolRaw:
    """Read a raw ZIMPOL file; :class:`ZimpolError` naming it when it is not one."""
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            if str(header.get("HIERARCH ESO SEQ ARM", "")).strip() != "ZIMPOL":
                raise ZimpolError(f"{path}: not a ZIMPOL file (SEQ ARM is not 'ZIMPOL')")
            if len(hdul) < 3:
                raise ZimpolError(
                    f"{path}: a raw ZIMPOL file has one image extension per camera; found {len(hdul) - 1}"
                )
            cubes = {}
            for camera in zc.CAMERAS:
                data = hdul[camera].data
                chip = str(
                    hdul[camera].header.get("HIERARCH ESO DET CHIP NAME", zc.CHIP_NAMES[camera])
                ).strip()
                if chip != zc.CHIP_NAMES[camera]:
                    raise ZimpolError(
                        f"{path}: extension {camera} is chip {chip!r}, expected {zc.CHIP_NAMES[camera]}"
                    )
                if data is None or data.ndim not in (2, 3):
                    raise ZimpolError(f"{path}: extension {camera} holds no image cube")
                cube = np.asarray(data, dtype=np.float64)
                cubes[camera] = cube[None] if cube.ndim == 2 else cube
                raw.layout_for_shape(cubes[camera].shape)
    except ZimpolError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ZimpolError(f"{path}: not a readable ZIMPOL raw file ({exc})") from exc
    return ZimpolRaw(path=path, header=header, cubes=cubes)


@dataclass
class SortedFiles:
    """Science and calibration files of one ZIMPOL sequence (paths, time order)."""

    science: list[Path]
    flux: list[Path]
    bias: list[Path]
    dark: list[Path]
    flat: list[Path]
    readout: str
    filters: tuple[str, str]
    notes: list[str] = field(default_factory=list)


def sort_files(paths: Sequence[str | Path]) -> SortedFiles:
    """Pick the ZIMPOL science files (DPR CATG SCIENCE, TYPE OBJECT; OBJECT,FLUX apart) and the
    calibrations of their read-out mode: BIAS, DARK at the science DIT (optional), FLAT,LAMP with
    the same filters -- the association rules of :mod:`.metadata` applied to one folder. Files of
    other arms are skipped. :class:`ZimpolError` when there is no science, several setups, or a
    needed calibration is missing.
    """
    headers: list[tuple[Path, fits.Header]] = []
    for p in paths:
        p = Path(p)
        try:
            h = fits.getheader(p, 0)
        except (OSError, ValueError) as exc:
            raise ZimpolError(f"{p}: not a readable FITS file ({exc})") from exc
        if str(h.get("HIERARCH ESO SEQ ARM", "")).strip() == "ZIMPOL":
            headers.append((p, h))

    def key(h: fits.Header, k: str) -> str:
        return str(h.get(f"HIERARCH ESO {k}", "")).strip()

    science = [
        (p, h) for p, h in headers if key(h, "DPR CATG") == "SCIENCE" and key(h, "DPR TYPE") == "OBJECT"
    ]
    flux = [
        (p, h) for p, h in headers if key(h, "DPR CATG") == "SCIENCE" and key(h, "DPR TYPE") == "OBJECT,FLUX"
    ]
    if not science:
        raise ZimpolError(f"no ZIMPOL science (OBJECT) file among the {len(list(paths))} inputs")
    setups = {
        (key(h, "DET READ CURNAME"), key(h, zc.camera_filter(1)), key(h, zc.camera_filter(2)))
        for _, h in science + flux
    }
    if len(setups) > 1:
        raise ZimpolError(
            f"ZIMPOL science files of several setups (read-out, CAM1, CAM2 filters): {sorted(setups)}"
        )
    readout, f1, f2 = setups.pop()
    dits = {float(h.get("HIERARCH ESO DET DIT1", 0.0)) for _, h in science + flux}

    def calib(kind: str, *, filters: bool = False, dit: bool = False) -> list[Path]:
        out = []
        for p, h in headers:
            if key(h, "DPR TYPE") != kind or key(h, "DET READ CURNAME") != readout:
                continue
            if filters and (key(h, zc.camera_filter(1)), key(h, zc.camera_filter(2))) != (f1, f2):
                continue
            if dit and all(abs(float(h.get("HIERARCH ESO DET DIT1", -1.0)) - d) > 0.01 for d in dits):
                continue
            out.append(p)
        return out

    sorted_files = SortedFiles(
        science=sorted(p for p, _ in science),
        flux=sorted(p for p, _ in flux),
        bias=sorted(calib("BIAS")),
        dark=sorted(calib("DARK", dit=True)),
        flat=sorted(calib("FLAT,LAMP", filters=True)),
        readout=readout,
        filters=(f1, f2),
    )
    if not sorted_files.bias:
        raise ZimpolError(f"no ZIMPOL BIAS in read-out mode {readout!r} among the inputs")
    if not sorted_files.flat:
        raise ZimpolError(
            f"no ZIMPOL FLAT,LAMP in read-out mode {readout!r} with filters {f1}/{f2} among the inputs"
        )
    dark_dits = {float(fits.getheader(p, 0).get("HIERARCH ESO DET DIT1", -1.0)) for p in sorted_files.dark}
    missing = sorted(d for d in dits if all(abs(d - x) > 0.01 for x in dark_dits))
    if missing:
        sorted_files.notes.append(
            f"no DARK at DIT {missing} s: the dark current of another DIT (or none) is used"
        )
    return sorted_files


# ----------------------------------------------------------------------------------------------
# Masters and frame calibration


@dataclass
class CameraMasters:
    """Master calibrations of one camera on the raw frame: bias (ADU), its overscan levels (2,),
    dark current (ADU/s), flat (data region, median 1 per ADC half), bad pixels (data region)."""

    bias: np.ndarray
    bias_overscan: np.ndarray
    dark_rate: np.ndarray
    flat: np.ndarray
    bad: np.ndarray


def _stack(files: list[ZimpolRaw], camera: int) -> np.ndarray:
    return np.concatenate([f.cubes[camera] for f in files], axis=0)


def _subtract_overscan_change(cube: np.ndarray, layout: raw.RawLayout, reference: np.ndarray) -> np.ndarray:
    """Remove each frame's change of overscan level (per ADC half) relative to ``reference`` (2,)."""
    levels = raw.overscan_levels(cube, layout) - reference[None, :]
    out = cube.copy()
    half = layout.columns // 2
    out[:, :, :half] -= levels[:, 0, None, None]
    out[:, :, half:] -= levels[:, 1, None, None]
    return out


def build_masters(
    bias: list[ZimpolRaw], dark: list[ZimpolRaw], flat: list[ZimpolRaw], camera: int, polarimetric: bool
) -> CameraMasters:
    """:class:`CameraMasters` of ``camera`` from the calibration files (see module doc)."""
    b_cube = _stack(bias, camera)
    layout = raw.layout_for_shape(b_cube.shape)
    master_bias = np.median(b_cube, axis=0)
    bias_os = raw.overscan_levels(master_bias, layout)
    dark_rate = np.zeros(layout.shape)
    if dark:
        rates = []
        for d in dark:  # dark current (ADU/s) of each DARK file, then their median
            if d.dit <= 0:
                raise ZimpolError(f"{d.path}: DARK with DIT {d.dit} s")
            d_cube = _subtract_overscan_change(d.cubes[camera], layout, bias_os)
            rates.append((np.median(d_cube, axis=0) - master_bias) / d.dit)
        dark_rate = np.median(np.stack(rates), axis=0)
    f_cube = _subtract_overscan_change(_stack(flat, camera), layout, bias_os)
    lamp = raw.data_region(np.median(f_cube, axis=0) - master_bias - dark_rate * flat[0].dit, layout)
    lit = np.ones(layout.data_shape, dtype=bool)
    if not polarimetric:
        lit[1::2] = False  # imaging: the covered rows receive no light
    flat_map = np.ones(layout.data_shape)
    half = layout.data_per_adc
    for sl in (np.s_[:, :half], np.s_[:, half:]):
        level = np.median(lamp[sl][lit[sl]])
        if not level > 0:
            raise ZimpolError(f"{flat[0].path}: camera {camera} flat has no signal (median {level:.3g} ADU)")
        flat_map[sl] = np.where(lit[sl], lamp[sl] / level, 1.0)
    bad = lit & ((flat_map < 0.5) | (flat_map > 1.5) | ~np.isfinite(flat_map))
    if dark:
        bad |= hot_pixels(raw.data_region(dark_rate, layout), sigma=8.0)
    return CameraMasters(bias=master_bias, bias_overscan=bias_os, dark_rate=dark_rate, flat=flat_map, bad=bad)


def calibrate_frames(f: ZimpolRaw, camera: int, masters: CameraMasters) -> np.ndarray:
    """Calibrated data region (ndit, rows, data columns) of one file and camera, ADU per frame;
    bad pixels NaN (see module doc, step 2)."""
    cube = f.cubes[camera]
    layout = raw.layout_for_shape(cube.shape)
    if masters.bias.shape != layout.shape:
        raise ZimpolError(
            f"{f.path}: camera {camera} frame {layout.shape} differs from the bias {masters.bias.shape}"
        )
    cube = _subtract_overscan_change(cube, layout, masters.bias_overscan)
    cube = cube - masters.bias[None] - masters.dark_rate[None] * f.dit
    data = raw.data_region(cube, layout) / masters.flat[None]
    data[:, masters.bad] = np.nan
    return data


def _fill(image: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(image)
    return correct_bad_pixels(image, bad).astype(np.float64) if bad.any() else image


# ----------------------------------------------------------------------------------------------
# Angles


def frame_angles(f: ZimpolRaw, ndit: int) -> dict[str, np.ndarray]:
    """Per-frame ``mjd`` (mid), ``parang`` and ``derot`` (deg) of a science file (module doc, step 5)."""
    try:
        date_obs = str(f.header["DATE-OBS"]).strip()
        fram = str(f.keyword("DET FRAM UTC")).strip()
        ra, dec = sc.read_pointing(f.header)
        mode = str(f.keyword("INS4 DROT2 MODE", "")).strip()
    except KeyError as exc:
        raise ZimpolError(f"{f.path}: {exc}") from exc
    if f.keyword("DET FRAM UTC") is None:
        raise ZimpolError(f"{f.path}: header keyword 'ESO DET FRAM UTC' is missing")
    ditdelay = float(f.keyword("DET DITDELAY", 0.0))
    _, mid, _ = timing.dit_times(date_obs, fram, ndit, f.dit, ditdelay)
    lat = float(f.keyword("TEL GEOLAT", sc.PARANAL_LAT_DEG))
    lon = float(f.keyword("TEL GEOLON", sc.PARANAL_LON_DEG))
    parang = timing.parallactic_angle(mid, ra, dec, lat, lon)
    if mode == "ELEV":
        derot = timing.derotation_angles(parang, sc.PUPIL_OFFSET_DEG, sc.TRUE_NORTH_DEG)
    elif mode == "SKY":
        derot = np.full(ndit, float(f.keyword("INS4 DROT2 POSANG", 0.0)) + sc.TRUE_NORTH_DEG)
    else:
        raise ZimpolError(f"{f.path}: unsupported INS4 DROT2 MODE {mode!r} (ELEV or SKY)")
    return {
        "mjd": mid.mjd,
        "parang": np.asarray(parang, dtype=float),
        "derot": np.asarray(derot, dtype=float),
    }


# ----------------------------------------------------------------------------------------------
# Centring


def _fit_star(images: list[np.ndarray], dithers: list[tuple[float, float]]) -> dict[str, Any]:
    """Star (x, y) on the median of the de-dithered ``images`` (reduced grid) and the fit error (px).

    ``dithers`` (x, y) are in physical pixels (halved on the reduced grid)."""
    dedithered = [
        shift_frame(np.nan_to_num(im), -d[1] / 2.0, -d[0] / 2.0, method="spline")
        for im, d in zip(images, dithers, strict=True)
    ]
    fit = center_psf(np.median(np.stack(dedithered), axis=0), box=12, sigma0=1.5)
    if not np.isfinite(fit.error):
        raise ZimpolError("star centring failed on the de-dithered combination (no unsaturated star found)")
    return {"x": float(fit.x), "y": float(fit.y), "error_px": float(fit.error)}


def _to_centre(
    shape: tuple[int, ...], star: dict[str, Any], dither: tuple[float, float]
) -> tuple[float, float]:
    """(dy, dx) that moves the star of a file dithered by ``dither`` (x, y physical px) to frame_center."""
    cy, cx = frame_center(shape)
    return cy - star["y"] - dither[1] / 2.0, cx - star["x"] - dither[0] / 2.0


def _shift(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    return shift_frame(image, dy, dx, method="spline")


# ----------------------------------------------------------------------------------------------
# Provenance header


def _provenance(header: fits.Header, recipe: str, files: SortedFiles, started: str) -> None:
    header["HIERARCH HCDC RECIPE"] = (recipe, "hcdc reduction")
    header["HIERARCH HCDC STARTED"] = (started, "UTC start of the reduction")
    header["HIERARCH HCDC READOUT"] = (files.readout, "ZIMPOL read-out mode")
    header["HIERARCH HCDC FILTERS"] = ("/".join(files.filters), "CAM1/CAM2 filters")
    header["HIERARCH HCDC NSCIENCE"] = (len(files.science), "science files")
    for i, p in enumerate(files.science + files.flux + files.bias + files.dark + files.flat):
        header[f"HIERARCH HCDC RAW{i}"] = p.name
    for i, note in enumerate(files.notes):
        header[f"HIERARCH HCDC NOTE{i}"] = note


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _pointing(header: fits.Header) -> tuple[float | None, float | None]:
    ra, dec = header.get("RA"), header.get("DEC")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (ra, dec))
    return (float(ra), float(dec)) if ok else (None, None)


# ----------------------------------------------------------------------------------------------
# Imaging -> Level 1


@dataclass
class ZimpolLevel1:
    """A ZIMPOL imaging Level 1 product: cube (cameras, frames, y, x) ADU/s, PSF (cameras, y, x),
    per-frame angles (deg), wavelengths (um, one per camera), the primary header."""

    cube: np.ndarray
    psf: np.ndarray
    derot: np.ndarray
    parang: np.ndarray
    wavelengths_um: np.ndarray
    header: fits.Header


def _load(paths: list[Path]) -> list[ZimpolRaw]:
    return [read_raw(p) for p in paths]


def reduce_imaging(paths: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Reduce a ZIMPOL imaging sequence and its calibrations to ``out_dir/zimpol_level1.fits``."""
    started = _now()
    files = sort_files(paths)
    if files.readout in zc.POLARIMETRIC_READOUTS:
        raise ZimpolError(f"read-out {files.readout!r} is polarimetric: use the {POLARIMETRY_RECIPE} recipe")
    science, flux = _load(files.science), _load(files.flux)
    bias, dark, flat = _load(files.bias), _load(files.dark), _load(files.flat)
    planes, psfs, centring = [], [], {}
    angles = [frame_angles(f, f.cubes[1].shape[0]) for f in science]
    for camera in zc.CAMERAS:
        masters = build_masters(bias, dark, flat, camera, polarimetric=False)

        def images(f: ZimpolRaw, camera: int = camera, masters: CameraMasters = masters) -> np.ndarray:
            frames = raw.deinterleave_imaging(calibrate_frames(f, camera, masters))
            return np.stack([raw.bin_columns(_fill(fr)) / f.dit for fr in frames])

        per_file = [images(f) for f in science]
        per_flux = [images(f) for f in flux]
        # The star is centred on the flux frames when there are some (behind a coronagraph it is
        # hidden; hcdc assumes it stays where the flux frames show it, up to the dithers).
        ref = per_flux if per_flux else per_file
        ref_files = flux if per_flux else science
        report = _fit_star([c.mean(axis=0) for c in ref], [f.dither(camera) for f in ref_files])
        report["on"] = "OBJECT,FLUX" if per_flux else "OBJECT"
        centring[camera] = report

        def centred(
            c: np.ndarray, f: ZimpolRaw, report: dict[str, Any] = report, camera: int = camera
        ) -> np.ndarray:
            dy, dx = _to_centre(c.shape, report, f.dither(camera))
            return np.stack([_shift(fr, dy, dx) for fr in c])

        cube = np.concatenate([centred(c, f) for c, f in zip(per_file, science, strict=True)])
        planes.append(cube)
        cy, cx = frame_center(cube.shape)
        h = PSF_HALF_SIZE
        psf_source = (
            np.concatenate([centred(c, f) for c, f in zip(per_flux, flux, strict=True)]) if per_flux else cube
        )
        psfs.append(np.median(psf_source, axis=0)[cy - h : cy + h + 1, cx - h : cx + h + 1])
    cube = np.stack(planes).astype(np.float32)
    parang = np.concatenate([a["parang"] for a in angles])
    derot = np.concatenate([a["derot"] for a in angles])
    waves = np.array([zc.filter_wavelength_nm(name) / 1000.0 for name in files.filters])
    primary = fits.PrimaryHDU(cube)
    hd = primary.header
    hd["BUNIT"] = ("ADU/s", "calibrated counts per second")
    _provenance(hd, IMAGING_RECIPE, files, started)
    hd["HIERARCH HCDC ANGCONV"] = ("derotation", "DEROT = PARANG + pupil offset + TN")
    hd["HIERARCH HCDC ROTSENSE"] = (ROTSENSE_CCW, "turn counter-clockwise by DEROT for N up")
    hd["HIERARCH HCDC ANGSKY"] = (True, "DEROT includes pupil offset and true north")
    hd["HIERARCH HCDC PIXSCALE"] = (zc.REDUCED_PIXEL_SCALE_MAS, "[mas/px] 2 columns binned")
    ra, dec = _pointing(science[0].header)
    if ra is not None:
        hd["HIERARCH HCDC RA"] = (ra, "[deg] RA (J2000) of the pointing")
        hd["HIERARCH HCDC DEC"] = (dec, "[deg] DEC (J2000) of the pointing")
    for camera, rep in centring.items():
        hd[f"HIERARCH HCDC CAM{camera} CENTER X"] = (rep["x"], "[px] star x, de-dithered")
        hd[f"HIERARCH HCDC CAM{camera} CENTER Y"] = (rep["y"], "[px] star y, de-dithered")
        hd[f"HIERARCH HCDC CAM{camera} CENTER ERR"] = (rep["error_px"], "[px] centring error")
        hd[f"HIERARCH HCDC CAM{camera} CENTER ON"] = (rep["on"], "frames the star was fitted on")
    hdus: list[Any] = [primary]
    for name, data, unit in (
        ("PSF", np.stack(psfs).astype(np.float32), "ADU/s"),
        ("DEROT", derot, "deg"),
        ("PARANG", parang, "deg"),
        ("WAVELENGTH", waves, "um"),
    ):
        hdu = fits.ImageHDU(np.asarray(data), name=name)
        hdu.header["BUNIT"] = unit
        if name == "DEROT":
            hdu.header["ANGCONV"] = ("derotation", "vlt-sphere/VIP derotation (docs/conventions.md)")
            hdu.header["ROTSENSE"] = (ROTSENSE_CCW, "frame k turned counter-clockwise by it is N up")
        hdus.append(hdu)
    rows = Table(
        {
            "FILE": np.repeat([p.name for p in files.science], [f.cubes[1].shape[0] for f in science]),
            "MJD": np.concatenate([a["mjd"] for a in angles]),
            "PARANG": parang,
            "DEROT": derot,
        }
    )
    hdus.append(fits.table_to_hdu(rows))
    hdus[-1].name = "FRAMES"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LEVEL1_FILE
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def is_level1_product(path: str | Path) -> bool:
    """True when ``path`` (the file or its folder) is a ZIMPOL imaging Level 1 written by
    :func:`reduce_imaging` (its ``HIERARCH HCDC RECIPE`` card); an unreadable one is claimed too,
    so that :func:`read_level1_zimpol` names the problem."""
    path = Path(path)
    product = path if path.is_file() else path / LEVEL1_FILE
    if product.name != LEVEL1_FILE or not product.is_file():
        return False
    try:
        header = fits.getheader(product, 0)
    except (OSError, ValueError):
        return True
    return str(header.get("HIERARCH HCDC RECIPE", "")).strip() == IMAGING_RECIPE


def read_level1_zimpol(path: str | Path) -> ZimpolLevel1:
    """Read a ZIMPOL imaging Level 1 (the file or its folder); :class:`ZimpolError` naming it."""
    path = Path(path)
    product = path if path.is_file() else path / LEVEL1_FILE
    try:
        with fits.open(product) as hdul:
            return ZimpolLevel1(
                cube=np.asarray(hdul[0].data, dtype=np.float32),
                psf=np.asarray(hdul["PSF"].data, dtype=np.float64),
                derot=np.asarray(hdul["DEROT"].data, dtype=np.float64),
                parang=np.asarray(hdul["PARANG"].data, dtype=np.float64),
                wavelengths_um=np.asarray(hdul["WAVELENGTH"].data, dtype=np.float64),
                header=hdul[0].header.copy(),
            )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ZimpolError(f"{product}: not a readable ZIMPOL Level 1 product ({exc})") from exc


def level1_cube(path: str | Path) -> Level1Cube:
    """The imaging Level 1 as ``l2-postprocess`` reads it (plate scale 7.2 mas, one plane per camera)."""
    p = read_level1_zimpol(path)
    return Level1Cube(
        cube=p.cube,
        psf=p.psf,
        derot=p.derot,
        wavelengths_um=p.wavelengths_um,
        pixel_scale_mas=zc.REDUCED_PIXEL_SCALE_MAS,
        unit=str(p.header.get("BUNIT", "ADU/s")),
        header=p.header,
    )


# ----------------------------------------------------------------------------------------------
# Polarimetry -> Stokes maps (Level 2)


@dataclass
class PolarimetryResult:
    """Per camera: the product path and the numbers of the reduction (IP, cycles, centring)."""

    paths: dict[int, Path]
    summary: dict[str, Any]


def _states(f: ZimpolRaw, camera: int, masters: CameraMasters) -> tuple[np.ndarray, np.ndarray]:
    """Modulation states (A, B) of one file, averaged over its frames of both phases, ADU/s,
    bad pixels filled, columns binned."""
    data = calibrate_frames(f, camera, masters)
    phases = raw.frame_phases(data.shape[0])
    pairs = [raw.deinterleave_polarimetry(fr, int(ph)) for fr, ph in zip(data, phases, strict=True)]
    with np.errstate(invalid="ignore"), _quiet():
        a = np.nanmean(np.stack([p[0] for p in pairs]), axis=0)
        b = np.nanmean(np.stack([p[1] for p in pairs]), axis=0)
    return raw.bin_columns(_fill(a)) / f.dit, raw.bin_columns(_fill(b)) / f.dit


class _quiet:
    """Silence numpy's 'Mean of empty slice' for all-NaN pixels (filled afterwards)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def _image_hdu(
    name: str, data: np.ndarray, unit: str, wcs: list[tuple[str, Any, str]], comment: str
) -> fits.ImageHDU:
    hdu = fits.ImageHDU(np.asarray(data, dtype=np.float32), name=name)
    hdu.header["BUNIT"] = unit
    for key, value, text in wcs:
        hdu.header[key] = (value, text)
    hdu.header["COMMENT"] = comment
    return hdu


def reduce_polarimetry(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    method: str = "double_difference",
    ip_annulus_px: tuple[float, float] | None = (3.0, 15.0),
    modulation_efficiency: tuple[float, float] = (1.0, 1.0),
    legacy_sense: bool = False,
) -> PolarimetryResult:
    """Reduce a ZIMPOL polarimetric sequence to one Stokes/polarisation product per camera.

    ``method``: ``double_difference`` or ``double_ratio``; ``ip_annulus_px``: (r_in, r_out) in
    reduced pixels (7.2 mas) where the instrumental polarisation is measured, None to skip the
    correction; ``modulation_efficiency`` (CAM1, CAM2, in (0, 1]): the modulation/demodulation
    efficiency by which the demodulated Q and U of each camera are divided (first, so the IP is
    measured on the corrected signal; 1 = none, the 0.1 behaviour). Each HWP cycle is turned
    north up counter-clockwise by its mean ``DEROT`` (``INS4 DROT2 POSANG`` + true north in field
    tracking; the vlt-sphere/VIP/IRDAP sense, :func:`hcdc.science.orientation.rotation_from_derotation`,
    docs/conventions.md); ``legacy_sense=True`` turns it clockwise, hcdc's old sense
    (``zimpol-polarimetry`` 0.1/0.2), wrong on real data by ``2 x DEROT`` (3.5 deg for POSANG 0).
    Writes ``out_dir/zimpol_pol_cam<c>.fits`` (extensions I, Q, U, Q_PHI, U_PHI, PI,
    DOLP, AOLP and CYCLES) and returns the paths and a summary.
    """
    started = _now()
    if len(modulation_efficiency) != 2 or not all(0.0 < e <= 1.0 for e in modulation_efficiency):
        raise ZimpolError(
            f"modulation efficiency must be two values (CAM1, CAM2) in (0, 1], got {modulation_efficiency}"
        )
    files = sort_files(paths)
    if files.readout not in zc.POLARIMETRIC_READOUTS:
        raise ZimpolError(f"read-out {files.readout!r} is not polarimetric: use the {IMAGING_RECIPE} recipe")
    science = _load(files.science)
    science.sort(key=lambda f: str(f.header.get("DATE-OBS", "")))
    labels = []
    for f in science:
        if f.stokes not in HWP_STOKES:
            raise ZimpolError(
                f"{f.path}: OCS3 ZIMPOL POL STOKES is {f.stokes!r}, expected one of {HWP_STOKES}"
            )
        labels.append(f.stokes)
    cycles = group_hwp_cycles(labels)
    if not cycles.cycles:
        raise ZimpolError(
            f"no complete Qplus/Qminus/Uplus/Uminus cycle among {len(science)} files ({labels})"
        )
    derot_file = [float(np.mean(frame_angles(f, f.cubes[1].shape[0])["derot"])) for f in science]
    bias, dark, flat = _load(files.bias), _load(files.dark), _load(files.flat)
    ra, dec = _pointing(science[0].header)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = PolarimetryResult(
        paths={},
        summary={
            "cycles": len(cycles.cycles),
            "dropped_files": [science[i].path.name for i in cycles.dropped],
            "method": method,
            "cameras": {},
        },
    )
    for camera in zc.CAMERAS:
        masters = build_masters(bias, dark, flat, camera, polarimetric=True)
        states = [_states(f, camera, masters) for f in science]
        centring = _fit_star([a + b for a, b in states], [f.dither(camera) for f in science])
        shifts = [_to_centre(states[0][0].shape, centring, f.dither(camera)) for f in science]
        states = [
            (_shift(a, dy, dx), _shift(b, dy, dx)) for (a, b), (dy, dx) in zip(states, shifts, strict=True)
        ]
        # CAM1: A = ordinary (I+S)/2; CAM2 sees the other beam-splitter output: roles swapped
        beams = np.stack(
            [
                np.stack([np.stack(states[i] if camera == 1 else states[i][::-1]) for i in cycle])
                for cycle in cycles.cycles
            ]
        )  # (cycles, 4, 2, ny, nx)
        per_cycle = stokes_from_beams(beams, method=method)  # type: ignore[arg-type]
        i_sum = q_sum = u_sum = None
        ips = []
        for k, cycle in enumerate(cycles.cycles):
            i_k, q_k, u_k = per_cycle.i[k], per_cycle.q[k], per_cycle.u[k]
            q_k, u_k = np.nan_to_num(q_k), np.nan_to_num(u_k)
            eff = float(modulation_efficiency[camera - 1])
            q_k, u_k = q_k / eff, u_k / eff
            if ip_annulus_px is not None:
                ip = correct_instrumental_polarisation(i_k, q_k, u_k, *ip_annulus_px)
                q_k, u_k = ip.q, ip.u
                ips.append((ip.p_q, ip.p_u))
            angle = float(np.mean([derot_file[j] for j in cycle]))
            # hcdc rotation (clockwise, geometry.derotate's sense) that puts north up
            turn = angle if legacy_sense else float(rotation_from_derotation(angle))
            q_k, u_k = rotate_stokes(q_k, u_k, -turn, fill_value=np.nan)
            i_k = rotate_frame(i_k, -turn, fill_value=np.nan)
            i_sum = i_k if i_sum is None else i_sum + i_k
            q_sum = q_k if q_sum is None else q_sum + q_k
            u_sum = u_k if u_sum is None else u_sum + u_k
        n = len(cycles.cycles)
        i_map, q_map, u_map = i_sum / n, q_sum / n, u_sum / n  # type: ignore[operator]
        q_phi, u_phi = azimuthal_stokes(q_map, u_map)
        wcs = celestial_wcs_cards(i_map.shape, zc.REDUCED_PIXEL_SCALE_MAS, ra, dec) if ra is not None else []
        primary = fits.PrimaryHDU()
        hd = primary.header
        _provenance(hd, POLARIMETRY_RECIPE, files, started)
        hd["HIERARCH HCDC CAMERA"] = (camera, f"ZIMPOL camera ({zc.CHIP_NAMES[camera]})")
        hd["HIERARCH HCDC FILTER"] = (files.filters[camera - 1], "filter of this camera")
        hd["HIERARCH HCDC METHOD"] = (method, "Stokes from the HWP cycles")
        hd["HIERARCH HCDC NCYCLES"] = (n, "complete HWP cycles combined")
        if not legacy_sense:
            hd["HIERARCH HCDC ROTSENSE"] = (ROTSENSE_CCW, "cycles turned counter-clockwise by DEROT")
        hd["HIERARCH HCDC MODEFF"] = (float(modulation_efficiency[camera - 1]), "Q, U divided by it")
        hd["HIERARCH HCDC PIXSCALE"] = (zc.REDUCED_PIXEL_SCALE_MAS, "[mas/px]")
        if ips:
            hd["HIERARCH HCDC IP Q"] = (float(np.mean([p[0] for p in ips])), "IP Q/I removed")
            hd["HIERARCH HCDC IP U"] = (float(np.mean([p[1] for p in ips])), "IP U/I removed")
            hd["HIERARCH HCDC IP RIN"] = (float(ip_annulus_px[0]), "[px] IP annulus")  # type: ignore[index]
            hd["HIERARCH HCDC IP ROUT"] = (float(ip_annulus_px[1]), "[px] IP annulus")  # type: ignore[index]
        hd["HIERARCH HCDC CENTER X"] = (centring["x"], "[px] star x, de-dithered")
        hd["HIERARCH HCDC CENTER Y"] = (centring["y"], "[px] star y, de-dithered")
        hd["COMMENT"] = "North up, east left; star at (ny//2, nx//2); IAU angles east of north"
        hdus: list[Any] = [primary]
        conv = "Q_phi = -Q cos 2phi - U sin 2phi, U_phi = Q sin 2phi - U cos 2phi (hcdc.science.polarimetry)"
        with _quiet():
            maps = (
                ("I", i_map, "ADU/s", "total intensity"),
                ("Q", q_map, "ADU/s", "Stokes Q (IAU, +Q north-south)"),
                ("U", u_map, "ADU/s", "Stokes U (IAU, +U 45 deg east of north)"),
                ("Q_PHI", q_phi, "ADU/s", conv),
                ("U_PHI", u_phi, "ADU/s", conv),
                ("PI", polarised_intensity(q_map, u_map), "ADU/s", "polarised intensity sqrt(Q^2+U^2)"),
                (
                    "DOLP",
                    degree_of_linear_polarisation(i_map, q_map, u_map),
                    "",
                    "degree of linear polarisation",
                ),
                (
                    "AOLP",
                    angle_of_linear_polarisation(q_map, u_map),
                    "deg",
                    "angle of linear polarisation, east of north",
                ),
            )
        for name, data, unit, comment in maps:
            hdus.append(_image_hdu(name, data, unit, wcs, comment))
        cyc = Table(
            {
                "CYCLE": np.arange(n),
                **{
                    lab.upper(): [science[c[j]].path.name for c in cycles.cycles]
                    for j, lab in enumerate(HWP_STOKES)
                },
                "DEROT": [float(np.mean([derot_file[j] for j in c])) for c in cycles.cycles],
            }
        )
        hdus.append(fits.table_to_hdu(cyc))
        hdus[-1].name = "CYCLES"
        path = out / f"zimpol_pol_cam{camera}.fits"
        fits.HDUList(hdus).writeto(path, overwrite=True)
        result.paths[camera] = path
        result.summary["cameras"][camera] = {
            "filter": files.filters[camera - 1],
            "ip_q": hd.get("HIERARCH HCDC IP Q"),
            "ip_u": hd.get("HIERARCH HCDC IP U"),
            "center_xy": [centring["x"], centring["y"]],
            "shape": list(i_map.shape),
        }
    result.summary["notes"] = files.notes
    return result
