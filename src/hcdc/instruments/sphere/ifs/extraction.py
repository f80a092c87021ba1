"""SPHERE/IFS spectral extraction: from calibrated raw frames to (39, y, x) spectral cubes.

What exists (first steps of the IFS Level 1, issue 16):

* :func:`detector_flat` -- the detector flat of one lamp from its two DITs (vlt-sphere
  ``compute_detector_flat``: long minus short DIT, normalised), with the pixels outside
  [0.9, 1.1] flagged;
* :func:`calibrate_ifs` -- from a white-lamp frame (SPECPOS), the laser frame (WAVE,LAMP) and
  the IFU flat, all background subtracted and flat fielded: the spectra positions (grid
  registration, per-spectrum measurement, affine grid model and its residual map), the
  wavelength solution (quadratic common law + per-lenslet zero point from the lasers) and the
  lenslet-to-lenslet response per channel (IFU flat);
* :func:`extract_cube` -- one calibrated frame to the (39, size, size) cube in the lenslet frame
  at 7.46 mas/px (flux per cube pixel per nm).

* :func:`calibrate_frame` / :func:`bad_pixel_map` -- background, flat and bad pixels
  (interpolated along the spectral direction).

* :func:`waffle_centers` -- the star centre per channel of an OBJECT,CENTER cube.

Cross-talk correction: ``calibrate_frame(..., crosstalk=geometry.CROSSTALK)`` (``level1-ifs``
0.3). Not yet: the wavelength recalibration from the waffle spots (see docs/ifs.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.science.calibration import ifs as cal
from hcdc.science.calibration.badpixels import hot_pixels
from hcdc.science.calibration.centering import waffle_center
from hcdc.science.calibration.ifs_crosstalk import CrosstalkModel, correct_crosstalk

__all__ = [
    "IfsCalibration",
    "mean_frame",
    "calibrate_frame",
    "bad_pixel_map",
    "detector_flat",
    "calibrate_ifs",
    "extract_cube",
    "waffle_centers",
    "CUBE_SIZE_FULL",
]

#: Cube size of the full detector: the ESO product is 291 x 291 (vlt-sphere crops it to 290).
CUBE_SIZE_FULL = 291


def mean_frame(path: str | Path) -> np.ndarray:
    """Mean over the DITs of a raw IFS cube (float64), with a clear error for a bad file."""
    try:
        data = fits.getdata(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the IFS frame ({exc})") from None
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 2:
        return data
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 2-D frame or a cube of DITs, got shape {data.shape}")
    return data.mean(axis=0)


def calibrate_frame(
    frame: np.ndarray,
    background: np.ndarray,
    flat: np.ndarray,
    bad: np.ndarray | None = None,
    crosstalk: CrosstalkModel | None = None,
) -> np.ndarray:
    """``(frame - background) / flat`` with bad pixels interpolated along the spectral direction
    (:func:`hcdc.science.calibration.ifs.interpolate_along_columns`, +-10 px), then, with a
    ``crosstalk`` model (``level1-ifs`` 0.3: :data:`hcdc.instruments.sphere.ifs.geometry.
    CROSSTALK`), the spectral cross-talk removed
    (:func:`hcdc.science.calibration.ifs_crosstalk.correct_crosstalk`; pixels still non-finite
    count as 0)."""
    image = (np.asarray(frame, dtype=np.float64) - background) / flat
    if bad is not None:
        image = cal.interpolate_along_columns(image, bad)
    if crosstalk is not None:
        image = correct_crosstalk(np.where(np.isfinite(image), image, 0.0), crosstalk)
    return image


def bad_pixel_map(background: np.ndarray, flat_bad: np.ndarray) -> np.ndarray:
    """Static bad pixels: hot/cold pixels of a master dark or background (5 sigma from their
    5x5 median, :func:`hcdc.science.calibration.badpixels.hot_pixels`) or of the detector flat."""
    return hot_pixels(background) | np.asarray(flat_bad, dtype=bool)


def waffle_centers(
    cube: np.ndarray, wavelengths_nm: np.ndarray, waffle_orient: str, search_radius_px: float = 6.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Star centre per channel of an OBJECT,CENTER cube from its four waffle spots.

    Channel by channel: spots at 13.72 lambda/D (:func:`hcdc.instruments.sphere.constants.
    waffle_radius_px` at 7.46 mas/px), first spot at 102 deg (+45 deg for ``OCS WAFFLE ORIENT =
    'x'``, vlt-sphere's IFS orientation), Gaussian width 0.42 lambda/D, searched within
    ``search_radius_px`` of the cube centre (:func:`hcdc.science.calibration.centering.
    waffle_center`). Returns centres (n_wave, 2) ``(x, y)`` in cube pixels, their errors (px;
    infinite where the spots were not found, e.g. outside the field) and the mean spot distance
    from the centre (px): it scales with wavelength, which is what the SPHERE DC's wavelength
    recalibration uses (vlt-sphere: scale_k = d_k / d_0).
    """
    orientation = sc.waffle_orientation_deg(waffle_orient, "IFS")
    size = cube.shape[-1]
    centres = np.full((len(wavelengths_nm), 2), np.nan)
    errors = np.full(len(wavelengths_nm), np.inf)
    radii = np.full(len(wavelengths_nm), np.nan)
    for k, wl in enumerate(np.asarray(wavelengths_nm, dtype=np.float64)):
        image = np.nan_to_num(cube[k])
        radius = sc.waffle_radius_px(wl, sc.IFS_PIXEL_SCALE_MAS)
        if radius + 8 > size // 2:
            continue  # the spots (and their fitting boxes) leave the cube
        est = waffle_center(
            image,
            radius,
            orientation,
            guess_xy=(size // 2, size // 2),
            spot_sigma=0.42 * sc.lambda_over_d_px(wl, sc.IFS_PIXEL_SCALE_MAS),
            search_radius=search_radius_px,
        )
        centres[k] = (est.x, est.y)
        errors[k] = est.error
        if est.spots is not None:
            radii[k] = float(np.mean(np.hypot(est.spots[:, 0] - est.x, est.spots[:, 1] - est.y)))
    return centres, errors, radii


def detector_flat(
    long_dit: np.ndarray, short_dit: np.ndarray, margin: int = geo.IFS_REFERENCE_PIXELS
) -> tuple[np.ndarray, np.ndarray]:
    """Detector flat (median 1) and bad-pixel mask from a lamp's long- and short-DIT frames.

    The difference removes bias and dark (vlt-sphere); pixels outside [0.9, 1.1] or in the
    unlit border are bad (their flat is set to 1 so that division leaves them as they are).
    """
    flat = np.asarray(long_dit, dtype=np.float64) - np.asarray(short_dit, dtype=np.float64)
    lit = np.zeros(flat.shape, dtype=bool)
    lit[margin:-margin, margin:-margin] = True
    flat = flat / np.median(flat[lit])
    bad = ~lit | (flat < 0.9) | (flat > 1.1)
    return np.where(bad, 1.0, flat), bad


@dataclass(frozen=True)
class IfsCalibration:
    """Everything extraction needs for one IFS mode.

    ``trace_xy`` (n, 2): spectra trace centres (px; x from the affine grid model, y the model's,
    the wavelength solution's zero points carrying the per-lenslet correction);
    ``lenslet_xy_mas`` (n, 2): the lenslets in the lenslet frame; ``solution``: the wavelength
    solution; ``response`` (n, 39): lenslet response per channel (IFU flat, median 1);
    ``residual_xy`` (n, 2): measured - model spectra positions (the residual map);
    ``grid_shift_px``: whole-pixel shift of the nominal grid found on the white lamp;
    ``band_response`` (39,) or None: the spectral response per channel relative to the IFU-flat
    lamp's smooth continuum (:func:`hcdc.science.calibration.ifs.band_response`; ~1 inside the
    band, < 1 in the channels next to the order-sorting filter edges), divided out by
    :func:`extract_cube` when given (``level1-ifs`` 0.5).
    """

    mode: geo.IfsModeOptics
    trace_xy: np.ndarray
    lenslet_xy_mas: np.ndarray
    solution: cal.WavelengthSolution
    response: np.ndarray
    residual_xy: np.ndarray
    grid_shift_px: tuple[int, int]
    band_response: np.ndarray | None = None
    _resamplers: dict[int, cal.CubeResampler] = field(default_factory=dict, repr=False, compare=False)

    @property
    def usable(self) -> np.ndarray:
        """Lenslets with a measured response in every channel (the ones that make the cube)."""
        return np.all(np.isfinite(self.response), axis=1)

    def resampler(self, size: int) -> cal.CubeResampler:
        """Lenslet -> cube interpolation for ``size`` (built once per size: ~0.3 s at 291)."""
        if size not in self._resamplers:
            self._resamplers[size] = cal.cube_resampler(
                self.lenslet_xy_mas[self.usable], size, sc.IFS_PIXEL_SCALE_MAS
            )
        return self._resamplers[size]

    @property
    def wavelengths_nm(self) -> np.ndarray:
        return geo.output_wavelengths_nm(self.mode.name)

    def channel_rows(self) -> np.ndarray:
        """Detector row (n, 39) of every output channel of every lenslet."""
        return self.trace_xy[:, 1:2] + self.solution.offset(self.wavelengths_nm)


#: Band response: the lamp continuum is fitted on the channels with |trace offset| <= half the
#: spectrum length minus this margin (px), >= 4 px (> 4.5 spectral-PSF sigma) from the
#: order-sorting filter edges, which lie 1 px beyond the first and last channels.
BAND_EDGE_MARGIN_PX = 3.0


def calibrate_ifs(
    white: np.ndarray,
    lasers: np.ndarray,
    ifu_flat: np.ndarray,
    mode: str,
    band_response: bool = False,
) -> IfsCalibration:
    """Spectra positions, wavelength solution and lenslet response from three calibrated frames.

    ``white`` (SPECPOS), ``lasers`` (WAVE,LAMP) and ``ifu_flat`` (FLAT,LAMP, DPR TECH=IFU) are
    background-subtracted, flat-fielded frames of one mode. The nominal grid
    (:func:`hcdc.instruments.sphere.ifs.geometry.lenslet_grid` centred on the detector) must be
    within 4 px in x and 6 px in y of the truth. ``band_response`` (``level1-ifs`` 0.5): also the
    per-channel spectral response at the band edges from the IFU flat's median spectrum against
    its smooth continuum fitted on the channels >= :data:`BAND_EDGE_MARGIN_PX` px inside the
    spectrum's ends (:func:`hcdc.science.calibration.ifs.band_response`); the lenslet response
    is normalised per channel as before.
    """
    optics = geo.ifs_mode_optics(mode)
    shape = white.shape
    if lasers.shape != shape or ifu_flat.shape != shape:
        raise ValueError(f"calibration frames differ in shape: {shape}, {lasers.shape}, {ifu_flat.shape}")
    grid = geo.lenslet_grid(shape)
    # the order-sorting filter edges are 1 px beyond the first/last channel (simulator and doc)
    edge_length = geo.SPECTRUM_LENGTH_PX + 2.0
    shift = cal.register_grid(white, grid.trace_xy, edge_length)
    predicted = grid.trace_xy + np.asarray(shift, dtype=np.float64)
    measured, _ = cal.measure_trace_positions(white, predicted, edge_length)
    model, residual = cal.fit_affine(predicted, measured)
    lines = np.asarray(optics.lasers_nm)
    solution = cal.fit_wavelength_solution(lasers, model, lines, optics.trace_offset_px(lines))
    waves = geo.output_wavelengths_nm(optics.name)
    ifu = cal.extract_spectra(ifu_flat, model, solution, waves)
    lamp = np.nanmedian(ifu, axis=0)
    response = ifu / lamp
    response = np.where(response > 0.2, response, np.nan)  # unlit / off-detector lenslets
    channel_response = None
    if band_response:
        offsets = optics.trace_offset_px(waves)
        interior = np.abs(offsets) <= geo.SPECTRUM_LENGTH_PX / 2.0 - BAND_EDGE_MARGIN_PX
        channel_response = cal.band_response(lamp, waves, interior)
    return IfsCalibration(
        mode=optics,
        trace_xy=model,
        lenslet_xy_mas=grid.sky_xy_mas,
        solution=solution,
        response=response,
        residual_xy=residual,
        grid_shift_px=(int(shift[0]), int(shift[1])),
        band_response=channel_response,
    )


def extract_cube(image: np.ndarray, calibration: IfsCalibration, size: int | None = None) -> np.ndarray:
    """The (39, size, size) spectral cube of one calibrated frame (flux per cube pixel per nm).

    Each lenslet's spectrum is extracted (:func:`hcdc.science.calibration.ifs.extract_spectra`),
    divided by its response (and by the calibration's ``band_response`` when it has one),
    converted from flux per lenslet to flux per cube pixel (pixel area /
    hexagonal lenslet area) and resampled at 7.46 mas/px. ``size`` defaults to 291 for a
    full detector, smaller detectors in proportion (1024 px: 145; odd sizes, the lenslet frame's origin on
    pixel ``size // 2``).
    """
    spectra = cal.extract_spectra(
        image, calibration.trace_xy, calibration.solution, calibration.wavelengths_nm
    )
    spectra = spectra / calibration.response
    if calibration.band_response is not None:
        spectra = spectra / calibration.band_response[None, :]
    if size is None:
        size = int(CUBE_SIZE_FULL * image.shape[1] / geo.IFS_RAW_SHAPE[1])
        size += 1 - size % 2  # odd: the lenslet frame's origin on the central pixel
    lenslet_area = geo.LENSLET_PITCH_SKY_MAS**2 * math.sqrt(3.0) / 2.0
    per_pixel = spectra * (sc.IFS_PIXEL_SCALE_MAS**2 / lenslet_area)
    return calibration.resampler(size)(per_pixel[calibration.usable])
