"""An IFS science sequence reduced to a (39, frames, y, x) cube, star centred per channel, with
per-DIT angles: the core of the IFS Level 1 (issue 16), without its product file and recipe.

For every DIT of every OBJECT file: background subtraction, flat field and bad pixels
(:func:`hcdc.instruments.sphere.ifs.extraction.calibrate_frame`), division by the DIT (ADU/s),
extraction to the spectral cube (:func:`extract_cube`), and recentring of each channel on the
star centre measured from the waffle spots of the OBJECT,CENTER file nearest in time
(:func:`waffle_centers`; channels whose spots were not found take the median centre of the
others; with ``max_center_err_px``, ``level1-ifs`` 0.6, so do the channels whose spot fit error
exceeds it: on the 'small' field the spots leave the cube towards the red, and their fits drift
by up to 0.6 px before they fail). Angles are the per-DIT parallactic and derotation angles
with the IFS instrument offset (:func:`hcdc.instruments.sphere.angles.dit_angles`). With
``anamorphism=True`` every channel is stretched about the star by
:data:`~hcdc.instruments.sphere.constants.IFS_ANAMORPHISM_XY` (vlt-sphere's IFS factors), so
that separations are isotropic at 7.46 mas/px.

:func:`reduce_flux` makes the PSF cube of the OBJECT,FLUX files the same way (each channel
centred by a Gaussian fit of the unocculted star, normalised to ADU/s/nm without the CPI neutral
density). With a ``crosstalk`` model every frame is corrected for the spectral cross-talk before
extraction (``level1-ifs`` 0.3). Not done: interpolation of the centre between CENTER files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.angles import dit_angles
from hcdc.instruments.sphere.ifs.extraction import (
    IfsCalibration,
    calibrate_frame,
    extract_cube,
    waffle_centers,
)
from hcdc.science.calibration.centering import center_psf
from hcdc.science.calibration.cubes import correct_anamorphism, flux_normalisation, recenter_frame
from hcdc.science.calibration.ifs_crosstalk import CrosstalkModel

__all__ = ["IfsSequence", "IfsPsf", "reduce_sequence", "reduce_flux", "PSF_SIZE_PX"]

#: Side of the PSF frames (px): 31 px = 231 mas, about 7 lambda/D at 1.35 um, the whole core
#: and first rings.
PSF_SIZE_PX = 31


@dataclass
class IfsSequence:
    """A reduced IFS sequence.

    ``cube`` (39, frames, size, size) in ADU/s/nm per pixel with the star on pixel
    ``(size // 2, size // 2)`` of every channel; ``wavelengths_nm`` (39,); ``mjd`` (mid-DIT),
    ``parang`` and ``derot`` (deg) per frame; ``centers_xy`` (n_center_files, 39, 2) the centres
    measured on each CENTER file (cube pixels before recentring) and ``center_errors`` their
    errors (px); ``frame_center`` (frames,) which CENTER file each frame used; ``files`` the
    OBJECT file of each frame.
    """

    cube: np.ndarray
    wavelengths_nm: np.ndarray
    mjd: np.ndarray
    parang: np.ndarray
    derot: np.ndarray
    centers_xy: np.ndarray
    center_errors: np.ndarray
    frame_center: np.ndarray
    files: list[str]


def _mjd_mid(header: fits.Header) -> float:
    t = sc.read_timing(header)
    return float((Time(t.date_obs, scale="utc").mjd + Time(t.fram_utc, scale="utc").mjd) / 2.0)


def _cube_of(
    frame: np.ndarray,
    dit: float,
    background: np.ndarray,
    flat: np.ndarray,
    bad: np.ndarray | None,
    calibration: IfsCalibration,
    crosstalk: CrosstalkModel | None = None,
) -> np.ndarray:
    return extract_cube(calibrate_frame(frame, background, flat, bad, crosstalk) / dit, calibration)


def reduce_sequence(
    object_paths: Sequence[str | Path],
    center_paths: Sequence[str | Path],
    calibration: IfsCalibration,
    background_for_dit: Callable[[float], np.ndarray],
    flat: np.ndarray,
    bad: np.ndarray | None = None,
    anamorphism: bool = False,
    crosstalk: CrosstalkModel | None = None,
    max_center_err_px: float | None = None,
) -> IfsSequence:
    """Reduce OBJECT files with the star centres of the CENTER files (see module doc).

    ``background_for_dit(dit)`` returns the master background (ADU) for a DIT (s).
    ``max_center_err_px``: a channel keeps its own waffle-spot centre only where the fit's error
    is at most this (px); the others take the median centre of those that do (None: every channel
    whose spots were found keeps its own, ``level1-ifs`` <= 0.5). Raises
    ``ValueError`` naming the file when a CENTER file gives no usable centre or a header lacks a
    timing/pointing keyword.
    """
    if not object_paths:
        raise ValueError("no OBJECT file to reduce")
    if not center_paths:
        raise ValueError("no OBJECT,CENTER file: the IFS star centre comes from the waffle spots")
    waves = calibration.wavelengths_nm
    centers, errors, center_mjd = [], [], []
    for path in center_paths:
        header = fits.getheader(path)
        dit = float(header["HIERARCH ESO DET SEQ1 DIT"])
        data = np.asarray(fits.getdata(path), dtype=np.float64)
        frame = data.mean(axis=0) if data.ndim == 3 else data
        cube = _cube_of(frame, dit, background_for_dit(dit), flat, bad, calibration, crosstalk)
        orient = str(header.get("HIERARCH ESO OCS WAFFLE ORIENT", "+")).strip()
        xy, err, _ = waffle_centers(cube, waves, orient)
        good = trusted_centres(err, max_center_err_px)
        if not good.any():
            raise ValueError(f"{path}: no waffle spots found in any channel")
        xy[~good] = np.median(xy[good], axis=0)
        centers.append(xy)
        errors.append(err)
        center_mjd.append(_mjd_mid(header))
    frames, mjd, parang, derot, which, names = [], [], [], [], [], []
    for path in object_paths:
        header = fits.getheader(path)
        dit = float(header["HIERARCH ESO DET SEQ1 DIT"])
        data = np.asarray(fits.getdata(path), dtype=np.float64)
        data = data[np.newaxis] if data.ndim == 2 else data
        angles = dit_angles(header, data.shape[0], arm="IFS", name=str(path))
        background = background_for_dit(dit)
        for k in range(data.shape[0]):
            nearest = int(np.argmin(np.abs(np.asarray(center_mjd) - angles["mjd"][k])))
            cube = _cube_of(data[k], dit, background, flat, bad, calibration, crosstalk)
            size = cube.shape[-1]
            frames.append(
                np.stack(
                    [
                        _destretch(
                            recenter_frame(np.nan_to_num(cube[c]), tuple(centers[nearest][c]), size),
                            anamorphism,
                        )
                        for c in range(cube.shape[0])
                    ]
                )
            )
            mjd.append(angles["mjd"][k])
            parang.append(angles["parang"][k])
            derot.append(angles["derot"][k])
            which.append(nearest)
            names.append(Path(path).name)
    return IfsSequence(
        cube=np.stack(frames, axis=1),
        wavelengths_nm=waves,
        mjd=np.asarray(mjd),
        parang=np.asarray(parang),
        derot=np.asarray(derot),
        centers_xy=np.asarray(centers),
        center_errors=np.asarray(errors),
        frame_center=np.asarray(which),
        files=names,
    )


def trusted_centres(errors: np.ndarray, max_err_px: float | None) -> np.ndarray:
    """Channels whose own waffle-spot centre is used: spots found (finite error) and, with
    ``max_err_px``, a fit error of at most that (px). Where no channel passes the error bound, every
    channel with spots found (the fallback keeps a usable centre on a noisy CENTER frame).

    Why a bound: on the 'small' simulated field (±370 mas) the spots leave the cube from ~1.1 µm
    on; before the fit fails its error grows (0.2 -> 1.4 px) and its centre drifts by up to 0.6 px
    (seeds 0 and 3), which put channels 21-22 of seed 3 at 0.7 px from their neighbours: their
    rescaled speckles decorrelate (0.94 instead of 0.998) and the companion model is misplaced,
    the seed's "water-band shift" of the companion spectra (docs/ifs.md §4)."""
    found = np.isfinite(errors)
    if max_err_px is None:
        return found
    good = found & (errors <= max_err_px)
    return good if good.any() else found


def _destretch(frame: np.ndarray, anamorphism: bool) -> np.ndarray:
    return correct_anamorphism(frame, sc.IFS_ANAMORPHISM_XY) if anamorphism else frame


@dataclass
class IfsPsf:
    """The PSF of a sequence: ``cube`` (39, flux_frames, PSF_SIZE_PX, PSF_SIZE_PX) in ADU/s/nm per
    pixel without the neutral density, the star on the central pixel; per frame ``files``,
    ``mjd`` (mid-DIT), ``dit`` (s), ``nd`` (CPI neutral density name) and ``centers_xy``
    (frames, 39, 2) the fitted centres (cube px)."""

    cube: np.ndarray
    files: list[str]
    mjd: np.ndarray
    dit: np.ndarray
    nd: list[str]
    centers_xy: np.ndarray


def reduce_flux(
    flux_paths: Sequence[str | Path],
    calibration: IfsCalibration,
    background_for_dit: Callable[[float], np.ndarray],
    flat: np.ndarray,
    bad: np.ndarray | None = None,
    anamorphism: bool = False,
    size: int = PSF_SIZE_PX,
    crosstalk: CrosstalkModel | None = None,
) -> IfsPsf:
    """PSF cube of the OBJECT,FLUX files (see the module doc). Every DIT of every file is one
    frame; each channel is centred on its own Gaussian fit
    (:func:`hcdc.science.calibration.centering.center_psf`) and multiplied by
    ``1 / (DIT x ND transmission(lambda))``. Raises ``ValueError`` naming the file when the star is
    not found in a channel or the neutral density is unknown."""
    waves = calibration.wavelengths_nm
    frames, files, mjd, dits, nds, centers = [], [], [], [], [], []
    for path in flux_paths:
        header = fits.getheader(path)
        dit = float(header["HIERARCH ESO DET SEQ1 DIT"])
        nd = str(header.get("HIERARCH ESO INS4 FILT2 NAME", "OPEN")).strip()
        try:
            norm = np.array([flux_normalisation(1.0, sc.nd_transmission(nd, float(w))) for w in waves])
        except KeyError as exc:
            raise ValueError(f"{path}: {exc.args[0]}") from None
        data = np.asarray(fits.getdata(path), dtype=np.float64)
        data = data[np.newaxis] if data.ndim == 2 else data
        angles = dit_angles(header, data.shape[0], arm="IFS", name=str(path))
        background = background_for_dit(dit)
        for k in range(data.shape[0]):
            cube = np.nan_to_num(_cube_of(data[k], dit, background, flat, bad, calibration, crosstalk))
            planes, xy = [], []
            for c in range(cube.shape[0]):
                est = center_psf(cube[c], sigma0=1.5)
                if not np.isfinite(est.error):
                    raise ValueError(
                        f"{path}: star not found in IFS channel {c} ({waves[c]:.0f} nm) of DIT {k + 1}"
                    )
                planes.append(
                    _destretch(recenter_frame(cube[c], (est.x, est.y), size), anamorphism) * norm[c]
                )
                xy.append((est.x, est.y))
            frames.append(np.stack(planes))
            centers.append(xy)
            files.append(Path(path).name)
            mjd.append(angles["mjd"][k])
            dits.append(dit)
            nds.append(nd)
    n = len(waves)
    return IfsPsf(
        cube=np.stack(frames, axis=1).astype(np.float32)
        if frames
        else np.zeros((n, 0, size, size), np.float32),
        files=files,
        mjd=np.asarray(mjd, dtype=np.float64),
        dit=np.asarray(dits, dtype=np.float64),
        nd=nds,
        centers_xy=np.asarray(centers, dtype=np.float64).reshape(-1, n, 2),
    )
