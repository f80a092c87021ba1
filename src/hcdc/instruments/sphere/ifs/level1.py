"""IFS raw files of one sequence and its calibrations -> a first Level 1 product file.

:func:`reduce_ifs` sorts the files by their DPR keywords (:func:`roles_from_headers`), builds the
calibrations (calibration dark, backgrounds per DIT with SKY > DARK,BACKGROUND > DARK, the
broad-band detector flat from its two DITs, bad pixels), calibrates the spectra positions,
wavelengths and lenslet response (:func:`hcdc.instruments.sphere.ifs.extraction.calibrate_ifs`)
and reduces the OBJECT files (:func:`hcdc.instruments.sphere.ifs.sequence.reduce_sequence`).

The product, ``level1_ifs.fits``: primary HDU the cube ``(39, frames, y, x)`` in ADU/s/nm per
pixel with the star on pixel ``(size // 2, size // 2)``; ``WAVELENGTH`` (nm); ``FRAMES`` table
(file, MJD mid-DIT, parallactic and derotation angles in deg, CENTER file used); ``CENTERS``
``(n_center, 39, 2)`` the waffle-spot centres (cube px before recentring) and ``CENTER_ERR``.
With ``psf=True`` (``level1-ifs`` 0.2) also ``PSF`` ``(39, flux_frames, 31, 31)`` the OBJECT,FLUX
frames in the cube's unit without the neutral density (:func:`~hcdc.instruments.sphere.ifs.
sequence.reduce_flux`) and ``PSF_FRAMES`` (file, MJD, DIT, ND); with ``anamorphism=True`` the
cube and PSF are corrected for the IFS anamorphism. The primary header then carries the angle
convention and pointing for Level 2 (``HCDC ANGSKY``, ``HCDC RA``/``DEC``).
:func:`level1_cube` gives Level 2 what it reads (:class:`hcdc.instruments.base.Level1Cube`).
With ``crosstalk=True`` (``level1-ifs`` 0.3) every frame through the lenslets is corrected for
the spectral cross-talk first (``HCDC XTALK``). With ``band_response=True`` (``level1-ifs`` 0.5)
the spectra are also divided by the spectral response at the band edges measured on the IFU flat
(:func:`hcdc.science.calibration.ifs.band_response`; ``HCDC BANDRESP`` and the ``BAND_RESPONSE``
HDU, one value per channel). No narrow-band flats (docs/ifs.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

import hcdc
from hcdc.instruments.base import Level1Cube, Level1Frames
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs.extraction import (
    bad_pixel_map,
    calibrate_frame,
    calibrate_ifs,
    detector_flat,
    mean_frame,
)
from hcdc.instruments.sphere.ifs.metadata import IFS_CALIB_DARK_DIT_S, ifs_flat_lamp, ifs_mode
from hcdc.instruments.sphere.ifs.sequence import reduce_flux, reduce_sequence
from hcdc.science.fits_cards import set_card
from hcdc.science.orientation import ROTSENSE_CCW

__all__ = [
    "RECIPE_NAME",
    "IfsLevel1",
    "roles_from_headers",
    "reduce_ifs",
    "read_level1_ifs",
    "is_level1_product",
    "level1_cube",
    "level1_frames",
]

RECIPE_NAME = "level1-ifs"
PRODUCT_NAME = "level1_ifs.fits"


def _role(header: fits.Header) -> str | None:
    """Role of one raw IFS file from its DPR keywords (the classification of ingest)."""
    dpr_type = str(header.get("HIERARCH ESO DPR TYPE", "")).strip()
    tech = str(header.get("HIERARCH ESO DPR TECH", "")).strip()
    if dpr_type == "FLAT,LAMP":
        comb = str(header.get("HIERARCH ESO INS2 COMB IFS", "")).strip()
        if comb.startswith("CAL_") or tech.startswith("IMAGE"):
            lamp = ifs_flat_lamp(comb)
            return f"DETECTOR_FLAT:{lamp}" if lamp else None
        return "IFU_FLAT"
    known = {"OBJECT", "OBJECT,CENTER", "OBJECT,FLUX", "SKY", "DARK", "DARK,BACKGROUND"}
    return dpr_type if dpr_type in known | {"SPECPOS,LAMP", "WAVE,LAMP"} else None


def roles_from_headers(paths: Sequence[str | Path]) -> dict[str, list[Path]]:
    """Raw IFS files by role (DPR TYPE, ``DETECTOR_FLAT:<lamp>``, ``IFU_FLAT``), in time order.

    Files of another SPHERE arm (the IRDIS half of an IRDIFS night) and files of no instrument
    (no ``INSTRUME``: a simulation's truth files) are skipped. Raises ``ValueError`` naming a file
    that cannot be read, that belongs to another instrument, or that is an IFS file with no known
    role, and when the files mix IFS modes.
    """
    roles: dict[str, list[tuple[str, Path]]] = {}
    modes = set()
    for path in paths:
        try:
            header = fits.getheader(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the header ({exc})") from None
        instrument = str(header.get("INSTRUME", "")).strip()
        if not instrument:
            continue
        if instrument != "SPHERE":
            raise ValueError(f"{path}: not a SPHERE file (INSTRUME = {instrument!r})")
        if str(header.get("HIERARCH ESO SEQ ARM", "")).strip() != "IFS":
            continue
        role = _role(header)
        if role is None:
            raise ValueError(
                f"{path}: no IFS Level 1 role for DPR TYPE {header.get('HIERARCH ESO DPR TYPE')!r}"
            )
        comb = str(header.get("HIERARCH ESO INS2 COMB IFS", "")).strip()
        modes.add(ifs_mode(comb, str(header.get("HIERARCH ESO INS2 MODE", "")).strip()))
        roles.setdefault(role, []).append((str(header.get("DATE-OBS", "")), Path(path)))
    if len(modes - {None}) > 1:
        raise ValueError(f"the files mix IFS modes: {', '.join(sorted(m for m in modes if m))}")
    return {role: [p for _, p in sorted(items)] for role, items in roles.items()}


def _dit(path: Path) -> float:
    return float(fits.getheader(path)["HIERARCH ESO DET SEQ1 DIT"])


def _first(roles: dict[str, list[Path]], role: str) -> Path:
    if not roles.get(role):
        raise ValueError(f"no {role} file: the IFS Level 1 needs one")
    return roles[role][0]


@dataclass
class IfsLevel1:
    """A Level 1 IFS product read back (see the module doc for the layout)."""

    path: Path
    cube: np.ndarray
    wavelengths_nm: np.ndarray
    frames: Table
    centers_xy: np.ndarray
    center_errors: np.ndarray
    header: fits.Header
    psf: np.ndarray | None = None
    psf_frames: Table | None = None

    @property
    def derot(self) -> np.ndarray:
        return np.asarray(self.frames["DEROT"], dtype=np.float64)


def reduce_ifs(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    psf: bool = False,
    anamorphism: bool = False,
    crosstalk: bool = False,
    band_response: bool = False,
    max_center_err_px: float | None = None,
) -> Path:
    """Reduce one IFS sequence (raw files of the sequence and its calibrations) to
    ``out_dir/level1_ifs.fits``; returns its path. Errors name the missing role or bad file.

    ``psf``: also the PSF cube of the OBJECT,FLUX files (at least one needed), the angle
    convention and pointing keywords; ``anamorphism``: correct the IFS anamorphism (module doc).
    ``crosstalk``: correct the spectral cross-talk of every frame that went through the lenslets
    (SPECPOS, WAVE, IFU flat, science; model :data:`hcdc.instruments.sphere.ifs.geometry.
    CROSSTALK`, ``level1-ifs`` 0.3). ``band_response``: divide the spectra by the spectral response
    per channel from the IFU flat (the order-sorting filter edges; ``level1-ifs`` 0.5).
    ``max_center_err_px``: channels whose waffle-spot fit error exceeds it take the median centre
    of the others (:func:`hcdc.instruments.sphere.ifs.sequence.trusted_centres`; ``level1-ifs`` 0.6:
    0.15 px; ``HCDC CENMAXER``). All False / None reproduce ``level1-ifs`` 0.1."""
    roles = roles_from_headers(paths)
    objects, centers = roles.get("OBJECT", []), roles.get("OBJECT,CENTER", [])
    if not objects:
        raise ValueError("no OBJECT file: nothing to reduce")
    mode = ifs_mode(str(fits.getheader(objects[0]).get("HIERARCH ESO INS2 COMB IFS", "")).strip(), None)
    if mode is None:
        raise ValueError(f"{objects[0]}: unknown IFS mode (INS2 COMB IFS)")
    darks = [
        p
        for p in roles.get("DARK", []) + roles.get("DARK,BACKGROUND", [])
        if abs(_dit(p) - IFS_CALIB_DARK_DIT_S) < 0.01
    ]
    if not darks:
        raise ValueError("no DARK or DARK,BACKGROUND at the 1.65 s calibration DIT")
    calib_dark = mean_frame(darks[0])
    flats = sorted(roles.get("DETECTOR_FLAT:BB", []), key=_dit)
    if len(flats) < 2:
        raise ValueError(f"{len(flats)} broad-band detector flat(s) (CAL_BB_2): need 2 DITs")
    flat, flat_bad = detector_flat(mean_frame(flats[-1]), mean_frame(flats[0]))
    backgrounds: dict[float, np.ndarray] = {}

    def background_for_dit(dit: float) -> np.ndarray:
        key = round(dit, 2)
        if key not in backgrounds:
            for role in ("SKY", "DARK,BACKGROUND", "DARK"):  # vlt-sphere's priority
                match = [p for p in roles.get(role, []) if abs(_dit(p) - dit) < 0.01]
                if match:
                    backgrounds[key] = mean_frame(match[0])
                    break
            else:
                raise ValueError(f"no SKY, DARK,BACKGROUND or DARK with DIT {dit} s")
        return backgrounds[key]

    bad = bad_pixel_map(background_for_dit(_dit(objects[0])), flat_bad)
    xtalk = geo.CROSSTALK if crosstalk else None
    calibration = calibrate_ifs(
        calibrate_frame(mean_frame(_first(roles, "SPECPOS,LAMP")), calib_dark, flat, bad, xtalk),
        calibrate_frame(mean_frame(_first(roles, "WAVE,LAMP")), calib_dark, flat, bad, xtalk),
        calibrate_frame(mean_frame(_first(roles, "IFU_FLAT")), calib_dark, flat, bad, xtalk),
        mode,
        band_response=band_response,
    )
    seq = reduce_sequence(
        objects,
        centers,
        calibration,
        background_for_dit,
        flat,
        bad,
        anamorphism,
        crosstalk=xtalk,
        max_center_err_px=max_center_err_px,
    )
    flux = None
    if psf:
        if not roles.get("OBJECT,FLUX"):
            raise ValueError("no OBJECT,FLUX file: the Level 1 PSF (and Level 2 photometry) needs one")
        flux = reduce_flux(
            roles["OBJECT,FLUX"], calibration, background_for_dit, flat, bad, anamorphism, crosstalk=xtalk
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    primary = fits.PrimaryHDU(seq.cube.astype(np.float32))
    h = primary.header
    h["BUNIT"] = ("ADU/s/nm", "per cube pixel, per nm")
    h["HIERARCH HCDC RECIPE"] = (RECIPE_NAME, "recipe that wrote this product")
    h["HIERARCH HCDC VERSION"] = (hcdc.__version__, "hcdc version")
    h["HIERARCH HCDC IFSMODE"] = (mode, "IFS mode")
    h["HIERARCH HCDC PIXSCAL"] = (sc.IFS_PIXEL_SCALE_MAS, "[mas/px] cube sampling")
    h["HIERARCH HCDC STARX"] = (seq.cube.shape[-1] // 2, "star pixel x (0-based)")
    h["HIERARCH HCDC STARY"] = (seq.cube.shape[-2] // 2, "star pixel y (0-based)")
    h["HIERARCH HCDC ANGCONV"] = ("derotation", "DEROT = PARANG + offsets (vlt-sphere)")
    h["HIERARCH HCDC ROTSENSE"] = (ROTSENSE_CCW, "turn counter-clockwise by DEROT for N up")
    if crosstalk:
        set_card(h, "HIERARCH HCDC XTALK", True, "spectral cross-talk corrected")
        set_card(h, "HIERARCH HCDC XTALKF", geo.CROSSTALK.leaked_fraction, "cross-talk: light in wings")
    if calibration.band_response is not None:
        set_card(h, "HIERARCH HCDC BANDRESP", True, "spectra divided by the band-edge response")
    if max_center_err_px is not None:
        set_card(h, "HIERARCH HCDC CENMAXER", float(max_center_err_px), "[px] own spot centre if err <= this")
    if flux is not None:
        set_card(h, "HIERARCH HCDC ANGSKY", True, "DEROT includes pupil offset and true north")
        set_card(h, "HIERARCH HCDC ANAMORPH", bool(anamorphism), "IFS anamorphism corrected")
        raw_header = fits.getheader(objects[0])
        for key in ("RA", "DEC"):
            value = raw_header.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                set_card(h, f"HIERARCH HCDC {key}", float(value), f"[deg] {key} (J2000) of the pointing")
    frames = Table(
        {
            "FILE": seq.files,
            "MJD": seq.mjd,
            "PARANG": seq.parang,
            "DEROT": seq.derot,
            "CENTER_FILE": [Path(centers[i]).name for i in seq.frame_center],
        }
    )
    hdus = fits.HDUList(
        [
            primary,
            fits.ImageHDU(seq.wavelengths_nm, name="WAVELENGTH"),
            fits.BinTableHDU(frames, name="FRAMES"),
            fits.ImageHDU(seq.centers_xy, name="CENTERS"),
            fits.ImageHDU(
                np.where(np.isfinite(seq.center_errors), seq.center_errors, -1.0), name="CENTER_ERR"
            ),
        ]
    )
    if calibration.band_response is not None:
        resp_hdu = fits.ImageHDU(calibration.band_response, name="BAND_RESPONSE")
        resp_hdu.header["COMMENT"] = "per channel: IFU-flat lamp spectrum / its smooth continuum"
        hdus.append(resp_hdu)
    if flux is not None:
        psf_hdu = fits.ImageHDU(flux.cube, name="PSF")
        psf_hdu.header["BUNIT"] = ("ADU/s/nm", "per cube pixel, per nm, without neutral density")
        hdus.append(psf_hdu)
        hdus.append(
            fits.BinTableHDU(
                Table({"FILE": flux.files, "MJD": flux.mjd, "DIT": flux.dit, "ND": flux.nd}),
                name="PSF_FRAMES",
            )
        )
    path = out / PRODUCT_NAME
    hdus.writeto(path, overwrite=True)
    return path


def read_level1_ifs(path: str | Path) -> IfsLevel1:
    """Read a product written by :func:`reduce_ifs` (a file or its directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / PRODUCT_NAME
    try:
        with fits.open(p) as hdul:
            if hdul[0].header.get("HIERARCH HCDC RECIPE") != RECIPE_NAME:
                raise ValueError(f"{p}: not a Level 1 IFS product (HCDC RECIPE is not {RECIPE_NAME})")
            return IfsLevel1(
                path=p,
                cube=np.array(hdul[0].data),
                wavelengths_nm=np.array(hdul["WAVELENGTH"].data),
                frames=Table(hdul["FRAMES"].data),
                centers_xy=np.array(hdul["CENTERS"].data),
                center_errors=np.array(hdul["CENTER_ERR"].data),
                header=hdul[0].header.copy(),
                psf=np.array(hdul["PSF"].data) if "PSF" in hdul else None,
                psf_frames=Table(hdul["PSF_FRAMES"].data) if "PSF_FRAMES" in hdul else None,
            )
    except (OSError, KeyError) as exc:
        raise ValueError(f"{p}: cannot read the Level 1 IFS product ({exc})") from None


def is_level1_product(path: str | Path) -> bool:
    """True when ``path`` (``level1_ifs.fits`` or its directory) is a product of :func:`reduce_ifs`
    (its ``HCDC RECIPE`` card); a file of that name whose header cannot be read is claimed too, so
    that :func:`level1_cube` names the problem."""
    p = Path(path)
    p = p / PRODUCT_NAME if p.is_dir() else p
    if p.name != PRODUCT_NAME or not p.is_file():
        return False
    try:
        return str(fits.getheader(p, 0).get("HIERARCH HCDC RECIPE", "")).strip() == RECIPE_NAME
    except (OSError, ValueError):
        return True


def level1_cube(path: str | Path) -> Level1Cube:
    """The Level 1 IFS product at ``path`` as Level 2 reads it: the (39, frames, y, x) cube, the
    mean of the PSF frames per channel (None for a 0.1 product without PSF), DEROT, the
    wavelengths in µm, the IFS plate scale (7.46 mas/px) and the per-frame AO conditions
    (``CONDITIONS``, ``level1-ifs`` >= 0.4; else None)."""
    from hcdc.instruments.sphere.ifs.frame_conditions import read_ifs_conditions

    product = read_level1_ifs(path)
    psf = None
    if product.psf is not None and product.psf.shape[1]:
        psf = product.psf.mean(axis=1)
    return Level1Cube(
        cube=product.cube,
        psf=psf,
        derot=product.derot,
        wavelengths_um=product.wavelengths_nm / 1000.0,
        pixel_scale_mas=float(product.header.get("HIERARCH HCDC PIXSCAL", sc.IFS_PIXEL_SCALE_MAS)),
        unit=str(product.header.get("BUNIT", "ADU/s/nm")),
        header=product.header,
        conditions=read_ifs_conditions(product.path),
    )


def level1_frames(path: str | Path, conditions: bool = True) -> Level1Frames:
    """The science cube ``(39, frames, y, x)`` (memory-mapped, float32 as written) and, with
    ``conditions``, the ``CONDITIONS`` columns (``level1-ifs`` >= 0.4; None without the table) of
    an IFS Level 1 product: what an RDI library reads of each candidate product, without the
    PSF, centres and wavelengths that :func:`read_level1_ifs` reads. Raises ValueError naming
    the file when it is not a Level 1 IFS product or its cube is not 4-D."""
    p = Path(path)
    p = p / PRODUCT_NAME if p.is_dir() else p
    if not is_level1_product(p):
        raise ValueError(f"{p}: not a Level 1 IFS product")
    cube = fits.getdata(p, 0, memmap=True)
    if cube.ndim != 4:
        raise ValueError(f"{p}: expected (wavelengths, frames, y, x), got {cube.shape}")
    columns = None
    if conditions:
        with fits.open(p, memmap=False) as hdul:
            if "CONDITIONS" in hdul:
                data = hdul["CONDITIONS"].data
                columns = {name: np.array(data[name]) for name in data.columns.names}
    return Level1Frames(cube, columns)
