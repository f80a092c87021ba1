"""Level 2 high-contrast products: the in-memory result and its FITS file.

A :class:`PostprocessResult` holds everything one post-processing run produces (final image,
throughput-corrected image, per-wavelength cube, S/N map, contrast curves, detections) plus the
provenance needed to rebuild it. :func:`write_product` stores it as one FITS file and
:func:`read_product` reads it back.

FITS layout (one extension per output, all optional except ``IMAGE``)::

    PRIMARY      no data; provenance: HCDCVER (software version), ALGORITHM, PARAMS (JSON,
                 long-string CONTINUE cards), DATE (creation, UTC), INPUTn / INSHAn (input file
                 names and sha256), PIXSCALE [mas/px], FWHM [px], STARFLUX, NSIGMA, orientation
    IMAGE        final image (y, x), all wavelengths combined, BUNIT = image unit
    IMAGE_TC     IMAGE divided by the algorithmic throughput map (self-subtraction corrected)
    CUBE         per-wavelength final images (wavelength, y, x)
    WAVELENGTH   table: WAVELENGTH [um], one row per CUBE plane
    SNR_MAP      S/N map (Mawet et al. 2014), BUNIT = ''
    CONTRAST     table: SEP_PX [pix], SEP_MAS [mas], then per wavelength k: CONTRAST_k,
                 THROUGHPUT_k, NOISE_k [image unit] (and COMPL_k, the completeness curve, when
                 computed); header WAVEk [um], NSIGMA, STUDENT, how the curve was made: CRITERIO
                 ('detection' or 'vip'), CURVEFPF (false-positive fraction), FAKES ('LIMIT':
                 throughput fakes at the reported contrast, or 'FIXED' at FCSNR times the noise),
                 and for the completeness curve COMPLETE (fraction recovered), COMPNFAK (fakes)
    DETECTIONS   table: X, Y [pix, 0-based], SEP_PX [pix], SEP_MAS [mas], PA [deg east of north],
                 SNR, FLUX [image unit], CONTRAST, FPF, FLUX_ERR, CONTRAST_ERR, PHOTOMETRY,
                 SEP_ERR_PX [pix], SEP_ERR_MAS [mas], PA_ERR [deg] (1-sigma astrometric errors; these
                 three columns only when measured); header ASTERPSF: the PSF of the fakes that
                 measured those errors, 'OFF-AXIS' (the reduction's PSF) or 'GAUSSIAN' (no PSF: a
                 Gaussian of the FWHM, from the data alone; absent in products before 1.3);
                 header SPECRES (l2-postprocess 1.4, spectral algorithms): how many candidates
                 were left out as a brighter one's spectral residual, SPECRnnn each of them
                 (1.6: whole comments, SPECRnnn as long-string cards; 1.4/1.5: the comments
                 astropy kept when it truncated them, same bytes, no warning);
                 header PHOTERR (l2-postprocess 1.4) = 'APERTURE+THROUGHPUT': FLUX_ERR and
                 CONTRAST_ERR hold the aperture noise (value / SNR) in quadrature with the
                 uncertainty of the fakes' mean throughput (before: the fakes' spread only);
                 header PHOTFAKE (l2-postprocess 1.6) = 'FLUX': the photometry fakes were injected
                 at the flux estimate, iterated (at most PHOTFMAX measurements), with columns
                 FAKEFLUX [image unit] (flux of the last fakes), FAKEITER (measurements at the
                 flux estimate), FAKECONV (the last one changed the flux by less than its error)

The star is on pixel ``(n//2, n//2)`` (0-based, i.e. CRPIX = n//2 + 1). Every image has a BUNIT.
Orientation (``docs/conventions.md``): when it is known (``ORIENT = 'NORTH_UP_EAST_LEFT'``) images
are north up / east left and PAs east of north; each image then carries a celestial WCS (RA---TAN /
DEC--TAN, CRVAL at the target, CDELT from the plate scale, PC matrix of the orientation) when the
target's RA/Dec and the plate scale are known, else a linear offset WCS in mas (``XOFFSET`` /
``YOFFSET``, CDELT1 = -PIXSCALE: the first axis counts offsets towards east). When it is not known
(``ORIENT = 'DETECTOR'``) the images are in the detector frame, PAs are relative to the detector
(``PACONV = 'DETECTOR'``) and the linear WCS counts detector offsets (``DETX`` / ``DETY``).
Warnings of the run (e.g. a star flux not in the cube's units) are kept as ``WARNn`` cards. Long
strings are written as FITS long-string (CONTINUE) cards, never truncated.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc import __version__
from hcdc.science.fits_cards import set_card
from hcdc.science.geometry import frame_center
from hcdc.science.orientation import Orientation

__all__ = [
    "ContrastCurves",
    "Detection",
    "PostprocessResult",
    "ProductError",
    "celestial_wcs_cards",
    "read_product",
    "write_product",
]

#: Extension names written by :func:`write_product`; the alias names of the issue text are read too.
EXTNAMES = ("IMAGE", "IMAGE_TC", "CUBE", "WAVELENGTH", "SNR_MAP", "CONTRAST", "DETECTIONS")
_ALIASES = {
    "IMAGE_TC": ("IMAGE_TC", "IMAGE_THROUGHPUT_CORRECTED"),
    "CONTRAST": ("CONTRAST", "CONTRAST_CURVE"),
}
PRODUCT_TYPE = "HCDC_L2_HCI"


class ProductError(ValueError):
    """A Level 2 product file is missing, malformed or inconsistent (message names the file)."""


@dataclass(frozen=True)
class Detection:
    """One point-source candidate on a north-up / east-left final image.

    ``x``, ``y`` are 0-based pixel coordinates; ``separation_px`` and ``pa_deg`` (east of north) are
    relative to the star at ``(n//2, n//2)``; ``flux`` is in the image unit (throughput corrected
    when known) and ``contrast`` = flux / star flux (NaN when either is unknown). ``fpf`` is the
    false-positive fraction of the S/N under the noise-only hypothesis; ``photometry`` says how the
    flux was measured: ``'injection'`` (aperture signal over the throughput of fakes injected for
    it), ``'negfc'`` (negative fake companion fit), ``'curve'`` (aperture signal over the throughput
    curve), ``'aperture'`` (raw aperture signal, no throughput known); ``flux_err``/``contrast_err``
    are 1-sigma. ``separation_err_px`` (and ``_mas``) and ``pa_err_deg`` are the 1-sigma astrometric
    errors of the measured position on the image (speckle noise and centroid bias, from fakes
    injected and recovered like it, or from the NEGFC fit's injection trials; NaN when not
    measured); the calibration's true-north and plate-scale errors are not included.
    """

    x: float
    y: float
    separation_px: float
    pa_deg: float  # east of north, or relative to the detector: see PostprocessResult.orientation
    snr: float
    separation_mas: float = math.nan
    flux: float = math.nan
    contrast: float = math.nan
    fpf: float = math.nan
    flux_err: float = math.nan
    contrast_err: float = math.nan
    photometry: str = "aperture"
    separation_err_px: float = math.nan
    separation_err_mas: float = math.nan
    pa_err_deg: float = math.nan

    def as_dict(self) -> dict[str, float]:
        """Plain dict (JSON-ready; NaN becomes None)."""
        return {k: _none_if_nan(v) for k, v in asdict(self).items()}


@dataclass
class ContrastCurves:
    """N-sigma contrast curves, one per wavelength, on a common separation grid.

    ``separation_px`` has shape (n_sep,); ``contrast``, ``throughput`` and ``noise`` have shape
    (n_wavelengths, n_sep). ``noise`` is the small-sample corrected residual noise in the image unit
    (before throughput correction); ``contrast`` is already divided by throughput and star flux.
    """

    separation_px: np.ndarray
    contrast: np.ndarray
    throughput: np.ndarray
    noise: np.ndarray
    nsigma: float = 5.0
    student: bool = True
    #: How the contrast was made: ``'detection'`` (the limit of hcdc's detection at ``fpf``) or
    #: ``'vip'`` (VIP 2.1.1's formula at ``nsigma``); see :mod:`~hcdc.science.postprocessing.contrast`.
    criterion: str = "detection"
    #: False-positive fraction of the criterion (None: not recorded, e.g. an old product).
    fpf: float | None = None
    #: Throughput fakes: None = injected at the contrast being reported (iterated to the limit);
    #: a number = fixed at that many times the aperture noise (VIP: 100).
    fc_snr: float | None = None
    #: Completeness curve (:mod:`~hcdc.science.postprocessing.completeness`), shape
    #: (n_wavelengths, n_sep): contrast at which ``completeness_level`` of fakes are recovered by
    #: hcdc's detection at ``fpf`` (NaN where not reached or not measured); None when not computed.
    completeness: np.ndarray | None = None
    completeness_level: float | None = None
    #: Fakes per separation and contrast level of the completeness curve.
    completeness_fakes: int | None = None
    #: Spectral algorithms: True when every wavelength's row is that channel's own limit (its
    #: image's noise and throughput, its star flux); False when the rows repeat the final image's
    #: limit for a flat-contrast companion (see :func:`hcdc.science.postprocessing.run.postprocess`).
    per_wavelength: bool = False
    #: (n_sep,) S/N threshold of the detection the curves are the limit of, when it was calibrated
    #: on the data (``l2-postprocess`` 1.5, :mod:`~hcdc.science.postprocessing.null_threshold`;
    #: column ``SNR_THR``); None: the Student threshold of ``fpf``.
    threshold: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.separation_px = np.asarray(self.separation_px, dtype=np.float64).ravel()
        n = self.separation_px.size
        arrays = {}
        names = ("contrast", "throughput", "noise") + (
            ("completeness",) if self.completeness is not None else ()
        )
        for name in names:
            a = np.atleast_2d(np.asarray(getattr(self, name), dtype=np.float64))
            if a.shape[-1] != n:
                raise ValueError(f"contrast curve column {name} has {a.shape[-1]} separations, expected {n}")
            arrays[name] = a
        if self.completeness is not None and not (
            self.completeness_level is not None and 0 < self.completeness_level < 1
        ):
            raise ValueError(f"a completeness curve needs its level in (0, 1); got {self.completeness_level}")
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1:
            raise ValueError(f"contrast, throughput and noise shapes differ: {sorted(shapes)}")
        for name, a in arrays.items():
            setattr(self, name, a)

    @property
    def n_wavelengths(self) -> int:
        return int(self.contrast.shape[0])

    def separation_mas(self, pixel_scale_mas: float | None) -> np.ndarray:
        """Separations in mas (NaN when the plate scale is unknown)."""
        if pixel_scale_mas is None or not np.isfinite(pixel_scale_mas):
            return np.full_like(self.separation_px, np.nan)
        return self.separation_px * float(pixel_scale_mas)

    @property
    def fakes_at_limit(self) -> bool:
        """Whether the throughput fakes were injected at the reported contrast (not a fixed S/N)."""
        return self.fc_snr is None

    def description(self) -> dict[str, Any]:
        """How the curve was made (JSON-ready): criterion, sigma, fpf, throughput fakes, completeness
        (and ``per_wavelength: True`` for per-channel limits; absent otherwise, as before)."""
        out: dict[str, Any] = {
            "criterion": self.criterion,
            "nsigma": float(self.nsigma),
            "fpf": self.fpf,
            "student": bool(self.student),
            "throughput_fakes": "at the reported limit" if self.fakes_at_limit else "fixed S/N",
            "fc_snr": self.fc_snr,
            "completeness": self.completeness_level if self.completeness is not None else None,
            "completeness_fakes": self.completeness_fakes,
        }
        if self.per_wavelength:
            out["per_wavelength"] = True
        if self.threshold is not None:
            out["threshold"] = "calibrated on the data's null map (SNR_THR)"
        return out

    def at(self, separation_px: float, wavelength_index: int = 0, completeness: bool = False) -> float:
        """Contrast linearly interpolated in log10 at ``separation_px`` (NaN outside the curve);
        with ``completeness=True`` the completeness curve's (NaN when there is none)."""
        if completeness and self.completeness is None:
            return math.nan
        curve = (self.completeness if completeness else self.contrast)[wavelength_index]
        good = np.isfinite(curve) & (curve > 0)
        sep = self.separation_px[good]
        if sep.size == 0 or separation_px < sep[0] or separation_px > sep[-1]:
            return math.nan
        return float(10 ** np.interp(separation_px, sep, np.log10(curve[good])))


@dataclass
class PostprocessResult:
    """Everything a Level 2 post-processing run produces, with its provenance.

    Arrays: ``image`` (y, x); ``image_throughput_corrected`` (y, x) or None; ``cube``
    (wavelengths, y, x) or None; ``wavelengths`` (µm) or None; ``snr_map`` (y, x) or None;
    ``throughput_map`` (y, x) or None (kept in memory only; IMAGE_TC carries its effect).
    Detections are S/N peaks above ``detection_threshold`` (a fixed S/N) or, when that is None, above
    the separation-dependent Student threshold of false-positive fraction ``detection_fpf``.
    ``image_unit`` is the flux unit of the images (FITS BUNIT, e.g. ``'ADU'``, ``'ADU/s'``; ``''``
    when unknown). ``pixel_scale_mas`` in mas/px, ``fwhm`` in px, ``star_flux`` in ``image_unit``
    integrated over the PSF as used for contrast (None when unknown). ``inputs`` maps input
    file names to their sha256 (or None). ``orientation`` says whether the images are north up /
    east left (PAs east of north) or in the detector frame (PAs relative to the detector), and
    the target's RA/Dec when known; ``warnings`` are the run's warnings for people (units, star
    position, implausible contrasts). ``astrometric_error_psf`` says which PSF the fakes that
    measured the detections' astrometric errors had: ``'OFF-AXIS'`` (the reduction's PSF) or
    ``'GAUSSIAN'`` (no PSF: a Gaussian of the FWHM); None where a product does not say
    (``l2-postprocess`` 1.1/1.2 outputs: ADI/RDI errors with the off-axis PSF, no other).
    ``spectral_residuals``: the candidates of a spectral algorithm left out as a brighter one's
    radial spectral residual (dicts: ``x``, ``y``, ``separation_px``, ``separation_mas``,
    ``pa_deg``, ``snr`` and ``of_separation_px``, ``of_pa_deg``, ``of_snr`` of that brighter one;
    ``l2-postprocess`` 1.4), None where that rule was not applied. ``photometric_errors``: what
    the detections' ``flux_err``/``contrast_err`` hold: ``'APERTURE+THROUGHPUT'`` (1.4: the
    aperture's noise in quadrature with the uncertainty of the fakes' mean throughput), None
    (before 1.4: the scatter of the fakes' throughput only). ``detection_null``: the detection
    threshold calibrated on the inverted-angle null map
    (:class:`~hcdc.science.postprocessing.null_threshold.EmpiricalThreshold`; ``l2-postprocess``
    1.5: cards ``DETNULL``, ``DETNU``, ``DETK``), None where the Student threshold was used.
    ``detection_search``: the threshold set for a stated number of false S/N peaks per image
    (:class:`~hcdc.science.postprocessing.search_threshold.SearchThreshold`; ``l2-postprocess``
    1.6's ``false_alarms_per_image``: cards ``DETSRCH``, ``DETFAPI``, ``DETFA5S``, ``DETLAM``),
    None otherwise.
    ``photometry_fakes``: per detection (same order), how its photometry fakes were set when they
    were injected at the flux estimate (``l2-postprocess`` 1.6, ``'injection'`` photometry):
    dicts ``fake_flux`` (cube units, the last fakes' flux, mean over wavelengths),
    ``iterations`` (measurements at the flux estimate), ``converged``; None otherwise.
    """

    image: np.ndarray
    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)
    image_throughput_corrected: np.ndarray | None = None
    cube: np.ndarray | None = None
    wavelengths: np.ndarray | None = None
    snr_map: np.ndarray | None = None
    contrast: ContrastCurves | None = None
    detections: list[Detection] = field(default_factory=list)
    throughput_map: np.ndarray | None = None
    image_unit: str = ""
    pixel_scale_mas: float | None = None
    fwhm: float | None = None
    star_flux: float | None = None
    detection_threshold: float | None = None
    detection_fpf: float | None = None
    inputs: dict[str, str | None] = field(default_factory=dict)
    orientation: Orientation = field(default_factory=Orientation)
    warnings: list[str] = field(default_factory=list)
    astrometric_error_psf: str | None = None
    spectral_residuals: list[dict[str, Any]] | None = None
    photometric_errors: str | None = None
    detection_null: Any = None
    detection_search: Any = None
    photometry_fakes: list[dict[str, Any]] | None = None
    software_version: str = __version__
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def separation_unit_known(self) -> bool:
        return _positive(self.pixel_scale_mas)

    def summary(self, separations_arcsec: Sequence[float] = (0.2, 0.3, 0.5, 1.0)) -> dict[str, Any]:
        """JSON-ready summary: provenance, detections and contrast at standard separations.

        Contrast at ``separations_arcsec`` is given only when the plate scale is known (one value
        per wavelength, None outside the curve).
        """
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "params": self.params,
            "software_version": self.software_version,
            "created": self.created,
            "shape": list(self.image.shape),
            "pixel_scale_mas": self.pixel_scale_mas,
            "fwhm_px": self.fwhm,
            "star_flux": self.star_flux,
            "image_unit": self.image_unit,
            "wavelengths_um": None if self.wavelengths is None else [float(w) for w in self.wavelengths],
            "detection_threshold_snr": self.detection_threshold,
            "detection_fpf": self.detection_fpf,
            "orientation": self.orientation.as_dict(),
            "pa_reference": self.orientation.pa_reference,
            "detections": [
                {**d.as_dict(), **_fake_flux_entry(self.photometry_fakes, i)}
                for i, d in enumerate(self.detections)
            ],
            **({"astrometric_error_psf": self.astrometric_error_psf} if self.astrometric_error_psf else {}),
            **(
                {"spectral_residuals": [dict(r) for r in self.spectral_residuals]}
                if self.spectral_residuals is not None
                else {}
            ),
            "contrast_at": [],
            "warnings": list(self.warnings),
        }
        if self.detection_null is not None:
            out["detection_null"] = {
                "method": "inverted-angles",
                "fpf_per_resolution_element": self.detection_null.fpf,
                "tail_dof": self.detection_null.nu,
                "threshold_factor": self.detection_null.tail_factor,
                "tail_evidence": self.detection_null.evidence,
            }
        search = self.detection_search
        if search is not None:
            out["detection_search"] = {
                "method": "random-field",
                "expected_false_peaks_per_image": search.false_alarms,
                "student_5sigma_false_peaks_per_image": search.student_false_alarms,
                "fpf_per_pixel": search.fpf,
                "roughness_px2": search.roughness,
                "pixels_searched": search.n_pixels,
            }
        curves = self.contrast
        out["contrast_curve"] = None if curves is None else curves.description()
        if search is not None and curves is not None and curves.threshold is not None:
            out["contrast_curve"]["threshold"] = (
                f"the detection's: {search.false_alarms:.3g} false peaks per image expected (SNR_THR)"
                + (", tail calibrated on the data's null map" if self.detection_null is not None else "")
            )
        if curves is not None and self.separation_unit_known:
            for sep_as in separations_arcsec:
                sep_px = sep_as * 1000.0 / float(self.pixel_scale_mas)
                entry = {
                    "separation_arcsec": sep_as,
                    "separation_px": round(sep_px, 3),
                    "contrast": [_none_if_nan(curves.at(sep_px, k)) for k in range(curves.n_wavelengths)],
                }
                if curves.completeness is not None:
                    entry["completeness_contrast"] = [
                        _none_if_nan(curves.at(sep_px, k, completeness=True))
                        for k in range(curves.n_wavelengths)
                    ]
                out["contrast_at"].append(entry)
        return out


# --------------------------------------------------------------------------------------------- helpers


def _fake_flux_entry(records: list[dict[str, Any]] | None, i: int) -> dict[str, Any]:
    """The summary keys of detection ``i``'s photometry fakes (1.6), none before."""
    if records is None or i >= len(records):
        return {}
    r = records[i]
    return {
        "photometry_fake_flux": _none_if_nan(float(r["fake_flux"])),
        "photometry_iterations": int(r["iterations"]),
        "photometry_converged": bool(r["converged"]),
    }


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if isinstance(value, np.floating | np.integer):
        return value.item()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"parameter value {value!r} of type {type(value).__name__} is not JSON serialisable")


def params_to_json(params: dict[str, Any]) -> str:
    """Canonical JSON of algorithm parameters (sorted keys; numpy values converted)."""
    return json.dumps(params, sort_keys=True, default=_json_default, separators=(",", ":"))


def _positive(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value)) and value > 0


def celestial_wcs_cards(
    shape: tuple[int, ...], pixel_scale_mas: float, ra_deg: float, dec_deg: float, north_deg: float = 0.0
) -> list[tuple[str, Any, str]]:
    """Celestial WCS cards (gnomonic RA---TAN / DEC--TAN, ICRS) of an image whose star, on pixel
    :func:`~hcdc.science.geometry.frame_center`, is at ``(ra_deg, dec_deg)``.

    ``north_deg`` is the angle (deg, counter-clockwise) from +y to north; 0 for hcdc's north-up /
    east-left images. East is left: CDELT1 is negative, and the PC matrix is the rotation.
    """
    cy, cx = frame_center(shape)
    scale_deg = float(pixel_scale_mas) / 3.6e6
    a = math.radians(north_deg)
    c, s = math.cos(a), math.sin(a)
    return [
        ("WCSAXES", 2, "celestial axes of this image"),
        ("CTYPE1", "RA---TAN", "gnomonic projection, right ascension"),
        ("CTYPE2", "DEC--TAN", "gnomonic projection, declination"),
        ("CRPIX1", cx + 1.0, "star x (1-based); star at (n//2, n//2) 0-based"),
        ("CRPIX2", cy + 1.0, "star y (1-based)"),
        ("CRVAL1", float(ra_deg), "[deg] RA of the star (target)"),
        ("CRVAL2", float(dec_deg), "[deg] Dec of the star (target)"),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
        ("CDELT1", -scale_deg, "[deg/px] east is left"),
        ("CDELT2", scale_deg, "[deg/px] north is up"),
        ("PC1_1", c, "rotation of the image (orientation)"),
        ("PC1_2", -s, ""),
        ("PC2_1", s, ""),
        ("PC2_2", c, ""),
        ("RADESYS", "ICRS", "reference frame of RA/Dec"),
    ]


def _image_header(
    unit: str,
    pixel_scale_mas: float | None,
    shape: tuple[int, ...],
    comment: str,
    orientation: Orientation,
    unit_comment: str | None = None,
) -> fits.Header:
    """Header of an image extension: BUNIT, orientation and the WCS (celestial when the target,
    the orientation and the plate scale are known; else linear offsets, in mas when the scale is)."""
    header = fits.Header()
    if unit_comment is None:
        unit_comment = "unit of the pixel values" if unit else "unit unknown (input cube had no BUNIT)"
    header["BUNIT"] = (unit, unit_comment)
    scale_known = _positive(pixel_scale_mas)
    if orientation.known and orientation.has_pointing and scale_known:
        for key, value, text in celestial_wcs_cards(
            shape[-2:], float(pixel_scale_mas), float(orientation.ra_deg), float(orientation.dec_deg)
        ):
            header[key] = (value, text)
        header["PIXSCALE"] = (float(pixel_scale_mas), "[mas/px] plate scale")
    else:
        cy, cx = frame_center(shape)
        header["CRPIX1"] = (cx + 1.0, "star x (1-based); star at (n//2, n//2) 0-based")
        header["CRPIX2"] = (cy + 1.0, "star y (1-based)")
        header["CRVAL1"] = (0.0, "offset of the star")
        header["CRVAL2"] = (0.0, "offset of the star")
        if orientation.known:
            header["CTYPE1"] = ("XOFFSET", "offset from the star towards east")
            header["CTYPE2"] = ("YOFFSET", "offset from the star towards north")
        else:
            header["CTYPE1"] = ("DETX", "offset from the star along detector +x")
            header["CTYPE2"] = ("DETY", "offset from the star along detector +y")
        if scale_known:
            # North up / east left: increasing x goes west, so the east offset decreases along axis 1.
            sign = -1.0 if orientation.known else 1.0
            header["CDELT1"] = (sign * float(pixel_scale_mas), "[mas/px] offset per pixel along axis 1")
            header["CDELT2"] = (float(pixel_scale_mas), "[mas/px] offset per pixel along axis 2")
            header["CUNIT1"] = ("mas", "")
            header["CUNIT2"] = ("mas", "")
            header["PIXSCALE"] = (float(pixel_scale_mas), "[mas/px] plate scale")
    for key, value, text in orientation.header_cards()[:2]:
        header[key] = (value, text)
    header["COMMENT"] = comment
    return header


def _fits_float(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


# --------------------------------------------------------------------------------------------- writing


def _primary_hdu(result: PostprocessResult) -> fits.PrimaryHDU:
    hdu = fits.PrimaryHDU()
    h = hdu.header
    set_card(h, "ORIGIN", "hcdc", "software that wrote this file")
    set_card(h, "PRODTYPE", PRODUCT_TYPE, "Level 2 high-contrast imaging product")
    set_card(h, "HCDCVER", result.software_version, "hcdc software version")
    set_card(h, "ALGORITH", result.algorithm, "post-processing algorithm (hcdc registry name)")
    set_card(h, "DATE", result.created, "UTC creation date of this product")
    # Long strings (and strings whose comment does not fit) use the long-string (CONTINUE) convention.
    set_card(h, "PARAMS", params_to_json(result.params), "algorithm parameters, JSON")
    set_card(h, "BUNIT", result.image_unit, "unit of the images")
    for key, value, comment in (
        ("PIXSCALE", result.pixel_scale_mas, "[mas/px] plate scale"),
        ("FWHM", result.fwhm, "[px] PSF FWHM used"),
        ("STARFLUX", result.star_flux, "star flux in BUNIT (contrast normalisation)"),
        ("DETTHR", result.detection_threshold, "fixed S/N detection threshold"),
        ("DETFPF", result.detection_fpf, "false-positive fraction of detection (Student)"),
    ):
        value = _fits_float(value)
        if value is not None:
            set_card(h, key, value, comment)
    null = result.detection_null
    if null is not None:  # l2-postprocess 1.5
        set_card(h, "DETFPF", float(null.fpf), "false-positive fraction per resolution element")
        set_card(h, "DETNULL", "INVERTED-ANGLES", "threshold calibrated on this null map")
        set_card(h, "DETNU", float(null.nu), "Student dof of the null map's S/N tail")
        set_card(h, "DETK", float(null.tail_factor), "S/N threshold = DETK x Student threshold")
        set_card(h, "DETNPIX", int(null.n_pixels), "null-map pixels of the tail fit")
        set_card(h, "DETEVID", float(null.evidence), "evidence of that tail against Gaussian")
    search = result.detection_search
    if search is not None:  # l2-postprocess 1.6, false_alarms_per_image
        set_card(h, "DETFPF", float(search.fpf), "false-positive fraction per pixel (Student)")
        set_card(h, "DETSRCH", "RANDOM-FIELD", "threshold for DETFAPI false peaks per image")
        set_card(h, "DETFAPI", float(search.false_alarms), "expected false S/N peaks per image")
        set_card(h, "DETFA5S", float(search.student_false_alarms), "same at the Student 5-sigma threshold")
        set_card(h, "DETLAM", float(search.roughness), "[px-2] roughness of the S/N map")
        set_card(h, "DETSPIX", int(search.n_pixels), "pixels searched for S/N peaks")
    if result.contrast is not None:
        set_card(h, "NSIGMA", float(result.contrast.nsigma), "contrast curve confidence (sigma)")
    for key, value, comment in result.orientation.header_cards():
        set_card(h, key, value, comment)
    cy, cx = frame_center(result.image.shape)
    set_card(h, "STARX", cx, "[px] star x, 0-based (n//2)")
    set_card(h, "STARY", cy, "[px] star y, 0-based (n//2)")
    set_card(h, "NINPUTS", len(result.inputs), "number of input files")
    for i, (name, sha) in enumerate(result.inputs.items(), start=1):
        set_card(h, f"INPUT{i}", str(name), "input file")
        if sha:
            h[f"INSHA{i}"] = sha  # 64 hex digits leave no room for a comment
    for i, text in enumerate(result.warnings, start=1):
        set_card(h, f"WARN{i}", text, "warning of the run")
    return hdu


def _contrast_hdu(
    curves: ContrastCurves, pixel_scale_mas: float | None, unit: str, wavelengths: np.ndarray | None
) -> fits.BinTableHDU:
    cols = [
        fits.Column(name="SEP_PX", format="D", unit="pix", array=curves.separation_px),
        fits.Column(name="SEP_MAS", format="D", unit="mas", array=curves.separation_mas(pixel_scale_mas)),
    ]
    for k in range(curves.n_wavelengths):
        cols += [
            fits.Column(name=f"CONTRAST_{k}", format="D", unit="", array=curves.contrast[k]),
            fits.Column(name=f"THROUGHPUT_{k}", format="D", unit="", array=curves.throughput[k]),
            fits.Column(name=f"NOISE_{k}", format="D", unit=unit or None, array=curves.noise[k]),
        ]
        if curves.completeness is not None:
            cols.append(fits.Column(name=f"COMPL_{k}", format="D", unit="", array=curves.completeness[k]))
    if curves.threshold is not None:  # l2-postprocess 1.5: calibrated on the data's null map
        cols.append(fits.Column(name="SNR_THR", format="D", unit="", array=curves.threshold))
    hdu = fits.BinTableHDU.from_columns(cols, name="CONTRAST")
    h = hdu.header
    h["NSIGMA"] = (float(curves.nsigma), "confidence of the contrast (sigma)")
    h["STUDENT"] = (bool(curves.student), "small-sample (Student t) correction applied")
    h["CRITERIO"] = (curves.criterion, "detection (hcdc limit at CURVEFPF) or vip")
    if curves.fpf is not None:
        h["CURVEFPF"] = (float(curves.fpf), "false-positive fraction of the criterion")
    h["FAKES"] = (
        "LIMIT" if curves.fakes_at_limit else "FIXED",
        "LIMIT: fakes at the contrast; FIXED: FCSNR",
    )
    if not curves.fakes_at_limit:
        h["FCSNR"] = (float(curves.fc_snr), "[noise] throughput fakes' brightness")
    if curves.completeness is not None:
        h["COMPLETE"] = (float(curves.completeness_level), "COMPL_k: contrast with this fraction recovered")
        if curves.completeness_fakes is not None:
            h["COMPNFAK"] = (int(curves.completeness_fakes), "completeness fakes per separation and level")
    hdu.header["NWAVE"] = (curves.n_wavelengths, "number of wavelength curves")
    if curves.per_wavelength:
        # What astropy kept of a longer comment (truncated with a warning): same bytes as before.
        hdu.header["PERWAVE"] = (True, "CONTRAST_k: the limit of wavelength k's own ima")
    if wavelengths is not None and len(wavelengths) == curves.n_wavelengths:
        for k, wl in enumerate(wavelengths):
            hdu.header[f"WAVE{k}"] = (float(wl), f"[um] wavelength of CONTRAST_{k}")
    return hdu


def _detections_hdu(
    detections: Iterable[Detection],
    unit: str,
    orientation: Orientation,
    error_psf: str | None = None,
    spectral_residuals: Sequence[Mapping[str, Any]] | None = None,
    photometric_errors: str | None = None,
    photometry_fakes: Sequence[Mapping[str, Any]] | None = None,
    whole_comments: bool = True,
) -> fits.BinTableHDU:
    dets = list(detections)

    def col(attr: str) -> np.ndarray:
        return np.array([getattr(d, attr) for d in dets], dtype=np.float64)

    cols = [
        fits.Column(name="X", format="D", unit="pix", array=col("x")),
        fits.Column(name="Y", format="D", unit="pix", array=col("y")),
        fits.Column(name="SEP_PX", format="D", unit="pix", array=col("separation_px")),
        fits.Column(name="SEP_MAS", format="D", unit="mas", array=col("separation_mas")),
        fits.Column(name="PA", format="D", unit="deg", array=col("pa_deg")),
        fits.Column(name="SNR", format="D", unit="", array=col("snr")),
        fits.Column(name="FLUX", format="D", unit=unit or None, array=col("flux")),
        fits.Column(name="CONTRAST", format="D", unit="", array=col("contrast")),
        fits.Column(name="FPF", format="D", unit="", array=col("fpf")),
        fits.Column(name="FLUX_ERR", format="D", unit=unit or None, array=col("flux_err")),
        fits.Column(name="CONTRAST_ERR", format="D", unit="", array=col("contrast_err")),
        fits.Column(name="PHOTOMETRY", format="8A", array=np.array([d.photometry for d in dets], dtype="S8")),
    ]
    if any(math.isfinite(d.separation_err_px) or math.isfinite(d.pa_err_deg) for d in dets):
        # only when measured: a product of a run without them (l2-postprocess 1.1) keeps 1.1's table
        cols += [
            fits.Column(name="SEP_ERR_PX", format="D", unit="pix", array=col("separation_err_px")),
            fits.Column(name="SEP_ERR_MAS", format="D", unit="mas", array=col("separation_err_mas")),
            fits.Column(name="PA_ERR", format="D", unit="deg", array=col("pa_err_deg")),
        ]
    if photometry_fakes is not None:  # l2-postprocess 1.6
        fakes = list(photometry_fakes)
        cols += [
            fits.Column(
                name="FAKEFLUX",
                format="D",
                unit=unit or None,
                array=np.array([f["fake_flux"] for f in fakes], dtype=np.float64),
            ),
            fits.Column(
                name="FAKEITER", format="J", array=np.array([f["iterations"] for f in fakes], dtype=np.int32)
            ),
            fits.Column(
                name="FAKECONV", format="L", array=np.array([f["converged"] for f in fakes], dtype=bool)
            ),
        ]
    hdu = fits.BinTableHDU.from_columns(cols, name="DETECTIONS")
    for key, value, text in orientation.header_cards()[:2]:
        hdu.header[key] = (value, text)
    where = "east of north" if orientation.known else "relative to the detector (+y towards -x)"
    hdu.header["COMMENT"] = f"X, Y 0-based pixels; PA {where}; FLUX throughput corrected"
    if error_psf:
        hdu.header["ASTERPSF"] = (error_psf, "PSF of the fakes behind SEP_ERR/PA_ERR")
        hdu.header["COMMENT"] = _ERROR_PSF_TEXT.get(error_psf, error_psf)
    if photometric_errors:  # l2-postprocess 1.4
        hdu.header["PHOTERR"] = (photometric_errors, "what FLUX_ERR/CONTRAST_ERR hold")
        for k, name in enumerate(hdu.columns.names, start=1):
            if name in ("FLUX_ERR", "CONTRAST_ERR"):
                hdu.header.comments[f"TTYPE{k}"] = "1 sigma: aperture noise (+) throughput error"
        hdu.header["COMMENT"] = (
            "FLUX_ERR/CONTRAST_ERR (1 sigma): the aperture's noise (value / SNR, Mawet, with its "
            "small-sample factor) in quadrature with the uncertainty of the mean throughput of the "
            "fakes (their spread / sqrt(number)); 'curve' photometry: the aperture noise only; "
            "'negfc': the fit's injection trials"
        )
    if photometry_fakes is not None:
        from hcdc.science.postprocessing.photometry import FAKE_FLUX_ITERATIONS

        hdu.header["PHOTFAKE"] = ("FLUX", "photometry fakes at the flux estimate")
        hdu.header["PHOTFMAX"] = (FAKE_FLUX_ITERATIONS, "most measurements at the flux estimate")
        hdu.header["COMMENT"] = (
            "FLUX: aperture signal over the throughput of fakes injected at the flux estimate, "
            "iterated until it changes by less than its error; FAKEFLUX: the last fakes' flux, "
            "FAKEITER: measurements at the flux estimate, FAKECONV: converged"
        )
    if spectral_residuals is not None:  # l2-postprocess 1.4, spectral algorithms
        _spectral_residual_cards(hdu.header, spectral_residuals, whole_comments)
    return hdu


def _spectral_residual_cards(
    header: fits.Header, residuals: Sequence[Mapping[str, Any]], whole_comments: bool
) -> None:
    """``SPECRES`` (how many) and ``SPECRnnn`` (each) cards of the left-out spectral residuals.

    ``whole_comments`` (``l2-postprocess`` 1.6): a comment that fits and ``SPECRnnn`` as
    long-string (CONTINUE) cards where value and comment do not fit in 80 characters. Otherwise
    (1.4, 1.5) the comments astropy kept when it truncated the longer ones with a VerifyWarning:
    the same bytes as those products, without the warning."""
    values = [
        f"{r['separation_px']:.2f} px PA {r['pa_deg']:.2f} S/N {r['snr']:.2f} "
        f"of {r['of_separation_px']:.2f} px PA {r['of_pa_deg']:.2f}"
        for r in residuals
    ]
    if whole_comments:
        set_card(header, "SPECRES", len(residuals), "left out: spectral residuals of brighter ones")
        for k, value in enumerate(values, start=1):
            set_card(header, f"SPECR{k:03d}", value, "left-out spectral residual")
        return
    header["SPECRES"] = _as_truncated(
        "SPECRES", len(residuals), "candidates left out: a brighter one's spectral residual"
    )
    for k, value in enumerate(values, start=1):
        header[f"SPECR{k:03d}"] = _as_truncated(f"SPECR{k:03d}", value, "left-out spectral residual")


def _as_truncated(key: str, value: Any, comment: str) -> tuple[Any, str]:
    """``(value, comment)`` with the comment cut where astropy cuts a card longer than 80
    characters (it keeps the first 80), so that the card is written without a warning."""
    room = 80 - len(fits.Card(key, value, "").image.rstrip()) - len(" / ")
    return value, comment[: max(room, 0)].rstrip()


#: ``SPECRnnn`` values: "<sep> px PA <pa> S/N <snr> of <sep> px PA <pa>"
_SPECR_FIELDS = ("separation_px", "pa_deg", "snr", "of_separation_px", "of_pa_deg")


def _read_spectral_residuals(header: fits.Header) -> list[dict[str, Any]] | None:
    """The left-out spectral residuals of a product's DETECTIONS header (``SPECRES``), else None."""
    if "SPECRES" not in header:
        return None
    out = []
    for k in range(1, int(header["SPECRES"]) + 1):
        words = str(header.get(f"SPECR{k:03d}", "")).split()
        try:
            numbers = [float(words[i]) for i in (0, 3, 5, 7, 10)]
        except (IndexError, ValueError):
            continue  # a card that does not say: left out of what is read back
        out.append(dict(zip(_SPECR_FIELDS, numbers, strict=True)))
    return out


#: the sentence a product carries about how its detections' astrometric errors were measured
_ERROR_PSF_TEXT = {
    "OFF-AXIS": "SEP_ERR/PA_ERR: rms offsets of fakes of the off-axis PSF at each detection's flux",
    "GAUSSIAN": "SEP_ERR/PA_ERR: no off-axis PSF; rms offsets of fakes of a Gaussian of the "
    "measured FWHM, at the flux that gives each detection's aperture signal (from the data alone)",
}


def write_product(
    result: PostprocessResult,
    path: str | Path,
    overwrite: bool = True,
    extra_cards: Sequence[tuple[str, Any, str]] = (),
    extra_hdus: Sequence[fits.hdu.base.ExtensionHDU] = (),
    whole_comments: bool = True,
) -> Path:
    """Write ``result`` as a Level 2 FITS product at ``path`` (see module docstring); return the path.

    ``extra_cards`` ((key, value, comment), e.g. the frame selection of a variant) go into the
    primary header, ``extra_hdus`` after the standard extensions. ``whole_comments=False`` writes
    the ``SPECRES``/``SPECRnnn`` cards as ``l2-postprocess`` 1.4 and 1.5 did (comments cut to
    what astropy kept of them; same bytes, no warning).

    The file is written to a temporary name and renamed, so a crash never leaves a half-written product.
    """
    path = Path(path)
    image = np.asarray(result.image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"product image must be 2-D (y, x); got shape {image.shape}")
    unit, scale, orient = result.image_unit, result.pixel_scale_mas, result.orientation
    primary = _primary_hdu(result)
    for key, value, comment in extra_cards:
        set_card(primary.header, key, value, comment)
    hdus: list[fits.hdu.base.ExtensionHDU | fits.PrimaryHDU] = [primary]
    hdus.append(
        fits.ImageHDU(
            image, header=_image_header(unit, scale, image.shape, "final image", orient), name="IMAGE"
        )
    )
    if result.image_throughput_corrected is not None:
        tc = np.asarray(result.image_throughput_corrected, dtype=np.float32)
        header = _image_header(unit, scale, tc.shape, "final image divided by algorithmic throughput", orient)
        hdus.append(fits.ImageHDU(tc, header=header, name="IMAGE_TC"))
    if result.cube is not None:
        cube = np.asarray(result.cube, dtype=np.float32)
        if cube.ndim != 3:
            raise ValueError(f"product cube must be 3-D (wavelength, y, x); got shape {cube.shape}")
        header = _image_header(unit, scale, cube.shape, "per-wavelength final images", orient)
        header["CTYPE3"] = ("WAVE-TAB" if result.wavelengths is not None else "INDEX", "see WAVELENGTH table")
        header["CUNIT3"] = ("um" if result.wavelengths is not None else "", "")
        hdus.append(fits.ImageHDU(cube, header=header, name="CUBE"))
    if result.wavelengths is not None:
        wl = np.asarray(result.wavelengths, dtype=np.float64).ravel()
        hdus.append(
            fits.BinTableHDU.from_columns(
                [fits.Column(name="WAVELENGTH", format="D", unit="um", array=wl)], name="WAVELENGTH"
            )
        )
    if result.snr_map is not None:
        snr = np.asarray(result.snr_map, dtype=np.float32)
        hdus.append(
            fits.ImageHDU(
                snr,
                header=_image_header(
                    "", scale, snr.shape, "S/N map (Mawet 2014)", orient, unit_comment="dimensionless (S/N)"
                ),
                name="SNR_MAP",
            )
        )
    if result.contrast is not None:
        hdus.append(_contrast_hdu(result.contrast, scale, unit, result.wavelengths))
    hdus.append(
        _detections_hdu(
            result.detections,
            unit,
            orient,
            result.astrometric_error_psf,
            result.spectral_residuals,
            result.photometric_errors,
            result.photometry_fakes,
            whole_comments,
        )
    )
    hdus.extend(extra_hdus)

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: product exists and overwrite=False")
    tmp = path.with_name(path.name + ".partial")
    fits.HDUList(hdus).writeto(tmp, overwrite=True, checksum=True)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------- reading


def _find(hdul: fits.HDUList, name: str) -> fits.hdu.base.ExtensionHDU | None:
    for alias in _ALIASES.get(name, (name,)):
        if alias in hdul:
            return hdul[alias]
    return None


def _optional_float(header: fits.Header, key: str) -> float | None:
    return float(header[key]) if key in header else None


def _read_null(primary: fits.Header) -> Any:
    """The calibrated detection threshold of a 1.5 product (``DETNULL`` cards), else None."""
    if "DETNULL" not in primary:
        return None
    from hcdc.science.postprocessing.null_threshold import EmpiricalThreshold

    return EmpiricalThreshold(
        float(primary["DETNU"]),
        float(primary["DETFPF"]),
        float(primary["FWHM"]),
        int(primary["DETNPIX"]),
        float(primary.get("DETEVID", float("nan"))),
    )


def _read_search(primary: fits.Header) -> Any:
    """The search threshold of a product made with ``false_alarms_per_image`` (``DETSRCH``
    cards), else None."""
    if "DETSRCH" not in primary:
        return None
    from hcdc.science.postprocessing.search_threshold import SearchThreshold

    return SearchThreshold(
        fpf=float(primary["DETFPF"]),
        fwhm=float(primary["FWHM"]),
        roughness=float(primary["DETLAM"]),
        false_alarms=float(primary["DETFAPI"]),
        student_false_alarms=float(primary["DETFA5S"]),
        n_pixels=int(primary["DETSPIX"]),
    )


def _read_contrast(hdu: fits.BinTableHDU, path: Path) -> ContrastCurves:
    data = hdu.data
    names = [n.upper() for n in data.columns.names]
    n_wave = int(hdu.header.get("NWAVE", sum(1 for n in names if n.startswith("CONTRAST_"))))
    if "SEP_PX" not in names or n_wave < 1:
        raise ProductError(f"{path}: CONTRAST table lacks SEP_PX or CONTRAST_k columns")
    try:
        stack = {
            name: np.array([np.asarray(data[f"{name}_{k}"], dtype=np.float64) for k in range(n_wave)])
            for name in ("CONTRAST", "THROUGHPUT", "NOISE")
        }
    except KeyError as exc:
        raise ProductError(f"{path}: CONTRAST table column missing: {exc}") from exc
    header = hdu.header
    completeness = None
    if "COMPLETE" in header:
        try:
            completeness = np.array([np.asarray(data[f"COMPL_{k}"], dtype=np.float64) for k in range(n_wave)])
        except KeyError as exc:
            raise ProductError(f"{path}: CONTRAST has COMPLETE but lacks column {exc}") from exc
    fakes = str(header.get("FAKES", "LIMIT")).strip().upper()
    if fakes not in ("LIMIT", "FIXED") or (fakes == "FIXED" and "FCSNR" not in header):
        raise ProductError(f"{path}: CONTRAST FAKES = {fakes!r} (expected LIMIT, or FIXED with FCSNR)")
    return ContrastCurves(
        separation_px=np.asarray(data["SEP_PX"], dtype=np.float64),
        contrast=stack["CONTRAST"],
        throughput=stack["THROUGHPUT"],
        noise=stack["NOISE"],
        nsigma=float(header.get("NSIGMA", 5.0)),
        student=bool(header.get("STUDENT", True)),
        criterion=str(header.get("CRITERIO", "detection")).strip(),
        fpf=_optional_float(header, "CURVEFPF"),
        fc_snr=float(header["FCSNR"]) if fakes == "FIXED" else None,
        completeness=completeness,
        completeness_level=_optional_float(header, "COMPLETE"),
        completeness_fakes=int(header["COMPNFAK"]) if "COMPNFAK" in header else None,
        per_wavelength=bool(header.get("PERWAVE", False)),
        threshold=np.asarray(data["SNR_THR"], dtype=np.float64) if "SNR_THR" in names else None,
    )


def _read_detections(hdu: fits.BinTableHDU) -> list[Detection]:
    data = hdu.data
    if data is None or len(data) == 0:
        return []
    names = {n.upper() for n in data.columns.names}
    return [
        Detection(
            x=float(row["X"]),
            y=float(row["Y"]),
            separation_px=float(row["SEP_PX"]),
            pa_deg=float(row["PA"]),
            snr=float(row["SNR"]),
            separation_mas=float(row["SEP_MAS"]),
            flux=float(row["FLUX"]),
            contrast=float(row["CONTRAST"]),
            fpf=float(row["FPF"]) if "FPF" in names else math.nan,
            flux_err=float(row["FLUX_ERR"]) if "FLUX_ERR" in names else math.nan,
            contrast_err=float(row["CONTRAST_ERR"]) if "CONTRAST_ERR" in names else math.nan,
            photometry=str(row["PHOTOMETRY"]).strip() if "PHOTOMETRY" in names else "aperture",
            # products written before astrometric errors were measured have no such columns
            separation_err_px=float(row["SEP_ERR_PX"]) if "SEP_ERR_PX" in names else math.nan,
            separation_err_mas=float(row["SEP_ERR_MAS"]) if "SEP_ERR_MAS" in names else math.nan,
            pa_err_deg=float(row["PA_ERR"]) if "PA_ERR" in names else math.nan,
        )
        for row in data
    ]


def _read_fake_fluxes(hdu: fits.BinTableHDU) -> list[dict[str, Any]] | None:
    """How the photometry fakes of a 1.6 product's detections were set (``PHOTFAKE``), else None."""
    if "PHOTFAKE" not in hdu.header:
        return None
    data = hdu.data
    if data is None or len(data) == 0:
        return []
    return [
        {
            "fake_flux": float(row["FAKEFLUX"]),
            "iterations": int(row["FAKEITER"]),
            "converged": bool(row["FAKECONV"]),
        }
        for row in data
    ]


def _read_warnings(header: fits.Header) -> list[str]:
    out, i = [], 1
    while f"WARN{i}" in header:
        out.append(str(header[f"WARN{i}"]))
        i += 1
    return out


def read_product(path: str | Path) -> PostprocessResult:
    """Read a Level 2 FITS product written by :func:`write_product` back into a :class:`PostprocessResult`.

    Raises :class:`ProductError` (naming the file) when the file is not FITS or lacks the IMAGE extension.
    """
    path = Path(path)
    if not path.is_file():
        raise ProductError(f"{path}: no such product file")
    try:
        hdul = fits.open(path, memmap=False)
    except OSError as exc:
        raise ProductError(f"{path}: not a readable FITS file ({exc})") from exc
    with hdul:
        primary = hdul[0].header
        if "IMAGE" not in hdul:
            raise ProductError(f"{path}: not an hcdc Level 2 product (no IMAGE extension)")
        try:
            params = json.loads(primary.get("PARAMS", "{}"))
        except json.JSONDecodeError as exc:
            raise ProductError(f"{path}: PARAMS keyword is not valid JSON ({exc})") from exc
        inputs: dict[str, str | None] = {}
        for i in range(1, int(primary.get("NINPUTS", 0)) + 1):
            inputs[str(primary[f"INPUT{i}"])] = primary.get(f"INSHA{i}")

        def image(name: str) -> np.ndarray | None:
            hdu = _find(hdul, name)
            return None if hdu is None else np.array(hdu.data, dtype=np.float32)

        wl_hdu = _find(hdul, "WAVELENGTH")
        contrast_hdu = _find(hdul, "CONTRAST")
        det_hdu = _find(hdul, "DETECTIONS")
        return PostprocessResult(
            image=image("IMAGE"),
            algorithm=str(primary.get("ALGORITH", "")),
            params=params,
            image_throughput_corrected=image("IMAGE_TC"),
            cube=image("CUBE"),
            wavelengths=None if wl_hdu is None else np.array(wl_hdu.data["WAVELENGTH"], dtype=np.float64),
            snr_map=image("SNR_MAP"),
            contrast=None if contrast_hdu is None else _read_contrast(contrast_hdu, path),
            detections=[] if det_hdu is None else _read_detections(det_hdu),
            astrometric_error_psf=None if det_hdu is None else det_hdu.header.get("ASTERPSF"),
            photometric_errors=None if det_hdu is None else det_hdu.header.get("PHOTERR"),
            spectral_residuals=None if det_hdu is None else _read_spectral_residuals(det_hdu.header),
            photometry_fakes=None if det_hdu is None else _read_fake_fluxes(det_hdu),
            image_unit=str(primary.get("BUNIT", "")),
            pixel_scale_mas=_optional_float(primary, "PIXSCALE"),
            fwhm=_optional_float(primary, "FWHM"),
            star_flux=_optional_float(primary, "STARFLUX"),
            detection_threshold=_optional_float(primary, "DETTHR"),
            detection_fpf=_optional_float(primary, "DETFPF"),
            detection_null=_read_null(primary),
            detection_search=_read_search(primary),
            inputs=inputs,
            orientation=Orientation.from_header(primary),
            warnings=_read_warnings(primary),
            software_version=str(primary.get("HCDCVER", "")),
            created=str(primary.get("DATE", "")),
        )
