"""Spectral differential imaging (SDI) and angular + spectral DI (ASDI) of IFS / IRDIS-DBI cubes.

Input: a (wavelengths, frames, y, x) cube, ``wavelengths`` (µm), derotation ``angles`` (deg, one
per frame, the :func:`hcdc.science.geometry.derotate` convention) and ``fwhm`` (px): one value
per wavelength, or one number taken as the FWHM at the **longest** wavelength.

Spectral rescaling
------------------
Speckles are diffraction features: their distance to the star grows like λ, while a companion
stays put. Magnifying channel ``w`` by ``s_w = λ_max / λ_w`` (:func:`rescale_frames`, about the
star) aligns every channel's speckles on those of the longest wavelength, and gives every
channel's PSF the FWHM of ``λ_max``; a companion at separation ``ρ`` then sits at ``ρ s_w``. A
speckle model built from the other channels is subtracted in that geometry, and the residual is
scaled back by ``1 / s_w`` so the companion returns to its true position.

Exclusion (self-subtraction control)
-----------------------------------
For a target channel ``w`` at radius ``R`` (rescaled geometry) the companion sits at ``R s_v / s_w``
in channel ``v``. A channel may enter the speckle model only if the companion moved by at least
``delta_sep`` FWHM (of ``λ_max``): ``R |s_v / s_w - 1| >= delta_sep * fwhm``. Near the star (and
everywhere for a narrow band such as IRDIS DBI) too few channels qualify: there the
``min_channels`` channels in which the companion moves most are used anyway (more
self-subtraction, stated in a warning), or, with ``min_channels=0``, the annulus is left without
model (NaN in the residuals, 0 in the images).

Algorithms (registered, ``spectral=True``; each returns ``(final_image, per_wavelength_cube)``)
----------------------------------------------------------------------------------------------
* ``sdi``: per frame and annulus, model = median of the allowed channels scaled by a least-squares
  factor (``method='median'``) or the projection on their first ``ncomp`` KL modes
  (``method='pca'``, Soummer et al. 2012); residuals scaled back, derotated, combined over frames
  (per-wavelength cube) and over wavelengths (final image, ``collapse_wl``).
* ``asdi``: ``mode='single'``: every frame of every channel is rescaled and the
  wavelengths x frames images form one library; full-frame PCA (``ncomp``) of that combined
  library (VIP's ``adimsdi='single'``; no exclusion: the companion moves radially across channels
  and azimuthally across frames, so its share of the first components is small); residuals
  scaled back, derotated and combined. ``mode='double'``: SDI per frame first (as ``sdi``), then
  an ADI algorithm of the registry (``adi_algorithm``, default ``'pca_annular'``, with
  ``adi_params``) on each wavelength's SDI residual sequence (Marois et al. 2006 "SDI then ADI";
  VIP's ``adimsdi='double'``).

References: Racine et al. (1999, PASP 111, 587); Sparks & Ford (2002, ApJ 578, 543);
Pueyo et al. (2012, ApJS 199, 6) for the spectral rescaling; Marois et al. (2006, ApJ 641, 556).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from hcdc.science import geometry
from hcdc.science.postprocessing.base import (
    check_angles,
    collapse_frames,
    derotate_and_collapse,
    get_algorithm,
    register_algorithm,
)
from hcdc.science.postprocessing.pca import pca_residuals

__all__ = [
    "rescale_frames",
    "check_spectral_inputs",
    "reference_fwhm",
    "wavelength_fwhm",
    "unscale_residuals",
    "derotate_each_wavelength",
    "combine_wavelengths",
    "spectral_coverage",
    "sdi_residuals",
    "sdi",
    "asdi",
]

SDI_METHODS = ("median", "pca")
ASDI_MODES = ("single", "double")


def rescale_frames(
    frames: np.ndarray, factors: np.ndarray, order: int = 3, fill_value: float = 0.0
) -> np.ndarray:
    """Magnify frame ``k`` of ``frames`` (k, y, x) by ``factors[k]`` about the star (frame centre).

    A factor > 1 pushes structures away from the star (a feature at ``ρ`` px moves to
    ``ρ * factor``); 1 / factor undoes it. Pixel values are interpolated (cubic spline for
    ``order=3``), not flux-conserved: surface brightness is kept, as for the speckle alignment of
    SDI. Pixels coming from outside the input get ``fill_value``.
    """
    frames = np.asarray(frames)
    factors = np.broadcast_to(np.asarray(factors, dtype=np.float64), (frames.shape[0],))
    if np.any(~np.isfinite(factors)) or np.any(factors <= 0):
        raise ValueError(f"scale factors must be positive and finite; got {factors}")
    center = np.array(geometry.frame_center(frames.shape), dtype=np.float64)
    out = np.empty(frames.shape, dtype=np.float32)
    for k in range(frames.shape[0]):
        if factors[k] == 1.0:
            out[k] = frames[k]
            continue
        inv = 1.0 / factors[k]
        out[k] = ndimage.affine_transform(
            frames[k].astype(np.float32),
            np.array([inv, inv]),
            offset=center - inv * center,
            order=order,
            mode="constant",
            cval=fill_value,
            prefilter=order > 1,
        )
    return out


def check_spectral_inputs(
    cube: np.ndarray, angles: np.ndarray, wavelengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a (wavelengths, frames, y, x) cube, its angles and wavelengths (float32/float64 out)."""
    cube = np.asarray(cube)
    if cube.ndim != 4:
        raise ValueError(f"a spectral cube must be (wavelengths, frames, y, x); got shape {cube.shape}")
    wl = np.asarray(wavelengths, dtype=np.float64).ravel()
    if wl.size != cube.shape[0]:
        raise ValueError(
            f"spectral cube has {cube.shape[0]} wavelengths but {wl.size} wavelengths were given"
        )
    if wl.size < 2 or np.any(~np.isfinite(wl)) or np.any(wl <= 0):
        raise ValueError(f"wavelengths must be >= 2 positive finite values in µm; got {wl}")
    angles = check_angles(angles, cube.shape[1], "spectral cube")
    return cube.astype(np.float32, copy=False), angles, wl


def reference_fwhm(fwhm: float | np.ndarray, wavelengths: np.ndarray) -> float:
    """FWHM (px) at the longest wavelength: ``fwhm`` itself if a number, else its value at ``argmax(λ)``."""
    values = np.asarray(fwhm, dtype=np.float64).ravel()
    if values.size == 1:
        value = float(values[0])
    elif values.size == np.size(wavelengths):
        value = float(values[int(np.argmax(wavelengths))])
    else:
        raise ValueError(
            f"fwhm must be one number or one value per wavelength ({np.size(wavelengths)}); "
            f"got {values.size} values"
        )
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"fwhm must be a positive number of pixels; got {fwhm!r}")
    return value


def wavelength_fwhm(fwhm: float | np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """FWHM (px) at every wavelength: as given, or scaled as λ from the value at the longest wavelength."""
    values = np.asarray(fwhm, dtype=np.float64).ravel()
    if values.size == np.size(wavelengths) and values.size > 1:
        return values
    wl = np.asarray(wavelengths, dtype=np.float64)
    return reference_fwhm(fwhm, wl) * wl / wl.max()


def _annuli_edges(shape: tuple[int, ...], width: float, inner: float, outer: float | None) -> np.ndarray:
    cy, cx = geometry.frame_center(shape)
    edge = float(min(cy, cx, shape[-2] - 1 - cy, shape[-1] - 1 - cx)) + 0.5
    r_out = edge if outer is None else min(float(outer), edge)
    if width <= 0 or not inner < r_out:
        raise ValueError(
            f"empty SDI field: inner radius {inner} px, outer radius {r_out} px, width {width} px"
        )
    return np.append(np.arange(inner, r_out, width), r_out)


def _klip_batch(target: np.ndarray, library: np.ndarray, ncomp: int) -> np.ndarray:
    """``target`` (b, p) minus its projection on the first ``ncomp`` KL modes of ``library`` (b, m, p)."""
    gram = library @ np.swapaxes(library, 1, 2)  # (b, m, m)
    values, vectors = np.linalg.eigh(gram)
    k = min(ncomp, library.shape[1])
    values, vectors = values[:, ::-1][:, :k], vectors[:, :, ::-1][:, :, :k]
    keep = values > values[:, :1] * 1e-12
    inv = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
    proj = np.einsum("bmp,bp->bm", library, target)  # L t
    weights = np.einsum("bmk,bk,bnk,bn->bm", vectors, inv, vectors, proj)
    return target - np.einsum("bm,bmp->bp", weights, library)


def _median_model_batch(target: np.ndarray, library: np.ndarray) -> np.ndarray:
    """Residual of ``target`` (b, p) minus the least-squares-scaled median of ``library`` (b, m, p)."""
    model = np.median(library, axis=1)
    norm = np.einsum("bp,bp->b", model, model)
    scale = np.where(norm > 0, np.einsum("bp,bp->b", model, target) / np.where(norm > 0, norm, 1.0), 0.0)
    return target - scale[:, None] * model


def sdi_residuals(
    cube: np.ndarray,
    wavelengths: np.ndarray,
    *,
    fwhm: float | np.ndarray,
    method: str = "median",
    ncomp: int = 1,
    delta_sep: float = 1.0,
    min_channels: int = 1,
    asize: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
) -> np.ndarray:
    """SDI residuals (wavelengths, frames, y, x) in the original (not rescaled) geometry.

    Per frame and annulus of ``asize`` px (default 1 FWHM of λ_max) of the rescaled frames, each
    channel minus its model from the channels where a companion moved by >= ``delta_sep`` FWHM
    (module docstring; where fewer qualify, the ``min_channels`` channels where it moves most).
    Pixels without a speckle model (outside the processed annuli, or starved annuli when
    ``min_channels=0``) are NaN.
    """
    if method not in SDI_METHODS:
        raise ValueError(f"unknown SDI method {method!r}; use one of {SDI_METHODS}")
    if method == "pca" and ncomp < 1:
        raise ValueError(f"ncomp must be >= 1; got {ncomp}")
    if delta_sep < 0:
        raise ValueError(f"delta_sep must be >= 0 (FWHM); got {delta_sep}")
    if min_channels < 0:
        raise ValueError(f"min_channels must be >= 0; got {min_channels}")
    cube = np.asarray(cube, dtype=np.float32)
    wl = np.asarray(wavelengths, dtype=np.float64)
    n_wl, n_fr = cube.shape[:2]
    f_ref = reference_fwhm(fwhm, wl)
    scale = wl.max() / wl
    width = f_ref if asize is None else float(asize)
    edges = _annuli_edges(
        cube.shape, width, f_ref if inner_radius is None else float(inner_radius), outer_radius
    )
    rr = geometry.distance_map(cube.shape).ravel()

    rescaled = np.stack([rescale_frames(cube[w], scale[w]) for w in range(n_wl)])  # (wl, fr, y, x)
    flat = rescaled.reshape(n_wl, n_fr, -1)
    residual = np.full_like(flat, np.nan)  # NaN = no speckle model there (outside the annuli, starved)
    starved: list[float] = []
    ratio = np.abs(scale[None, :] / scale[:, None] - 1.0)  # |s_v / s_w - 1|, (w, v)
    for r0, r1 in zip(edges[:-1], edges[1:], strict=True):
        idx = np.flatnonzero((rr >= r0) & (rr < r1))
        if idx.size == 0:
            continue
        radius = 0.5 * (r0 + r1)
        allowed = ratio * radius >= delta_sep * f_ref
        block = flat[:, :, idx].astype(np.float64)  # (wl, fr, p)
        for w in range(n_wl):
            refs = np.flatnonzero(allowed[w])
            if refs.size < max(min_channels, 1):
                # Not enough spectral lever here: fall back to the channels in which a companion
                # moves most (more self-subtraction, but a model everywhere), or leave it out.
                starved.append(radius)
                if min_channels == 0 or n_wl < 2:
                    continue
                farthest = np.argsort(-ratio[w], kind="stable")
                refs = np.sort(farthest[farthest != w][:min_channels])
            if refs.size == 0:
                continue
            library = np.swapaxes(block[refs], 0, 1)  # (fr, m, p)
            if method == "pca":
                res = _klip_batch(block[w], library, ncomp)
            else:
                res = _median_model_batch(block[w], library)
            residual[w][:, idx] = res
    if starved:
        what = (
            "those annuli are left out there (NaN)"
            if min_channels == 0
            else f"the {min_channels} channel(s) where it moves most are used there (more self-subtraction)"
        )
        warnings.warn(
            f"SDI: fewer than {max(min_channels, 1)} channel(s) move a companion by {delta_sep} FWHM at "
            f"{min(starved):.1f}-{max(starved):.1f} px for some wavelengths; {what}",
            stacklevel=2,
        )
    return unscale_residuals(residual.reshape(rescaled.shape), scale)


def unscale_residuals(residual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Residuals (wavelengths, frames, y, x) of rescaled channels back to the original geometry.

    Channel ``w`` is shrunk by ``1 / scale[w]``; NaN ("no speckle model") marks follow by nearest
    neighbour, and pixels that come from outside the rescaled frame are NaN too.
    """
    back = np.empty_like(residual)
    for w in range(residual.shape[0]):
        back[w] = rescale_frames(np.nan_to_num(residual[w]), 1.0 / scale[w])
        no_model = rescale_frames(
            np.isnan(residual[w]).astype(np.float32), 1.0 / scale[w], order=0, fill_value=1.0
        )
        back[w][no_model > 0.5] = np.nan
    return back


def combine_wavelengths(
    per_wavelength: np.ndarray, coverage: np.ndarray | None, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Final image (combination of the channels with data) and per-wavelength cube; 0 where no data."""
    masked = per_wavelength if coverage is None else np.where(coverage, per_wavelength, np.nan)
    final = np.nan_to_num(collapse_frames(masked.astype(np.float32), method), nan=0.0)
    return final, np.nan_to_num(masked, nan=0.0).astype(np.float32)


def spectral_coverage(residuals: np.ndarray) -> np.ndarray:
    """(wavelengths, y, x): where a channel has a speckle model (radial, so derotation keeps it)."""
    return ~np.isnan(residuals).all(axis=1)


def derotate_each_wavelength(
    residuals: np.ndarray, angles: np.ndarray, collapse: str, interpolation: str
) -> np.ndarray:
    # NaN-free input keeps spline interpolation from spreading NaN; coverage is applied afterwards.
    return np.stack(
        [
            derotate_and_collapse(np.nan_to_num(residuals[w]), angles, collapse, interpolation)
            for w in range(residuals.shape[0])
        ]
    )


@register_algorithm("sdi", spectral=True)
def sdi(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float | np.ndarray,
    wavelengths: np.ndarray,
    method: str = "median",
    ncomp: int = 1,
    delta_sep: float = 1.0,
    min_channels: int = 1,
    asize: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    collapse: str = "median",
    collapse_wl: str = "mean",
    interpolation: str = "bilinear",
) -> tuple[np.ndarray, np.ndarray]:
    """SDI: per frame, subtract a speckle model from the other (rescaled) wavelengths; derotate, combine.

    ``method`` ``'median'`` (scaled median of the allowed channels) or ``'pca'`` (``ncomp`` KL
    modes); ``delta_sep`` minimum radial companion motion between channels in FWHM, with
    ``min_channels`` channels used regardless where fewer qualify (0: none); ``asize``
    annulus width (px, default 1 FWHM); ``collapse`` over frames, ``collapse_wl`` over
    wavelengths. Returns ``(final_image (y, x), per_wavelength_cube (wavelengths, y, x))``.
    """
    cube, angles, wl = check_spectral_inputs(cube, angles, wavelengths)
    residuals = sdi_residuals(
        cube,
        wl,
        fwhm=fwhm,
        method=method,
        ncomp=ncomp,
        delta_sep=delta_sep,
        min_channels=min_channels,
        asize=asize,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
    )
    per_wl = derotate_each_wavelength(residuals, angles, collapse, interpolation)
    return combine_wavelengths(per_wl, spectral_coverage(residuals), collapse_wl)


@register_algorithm("asdi", spectral=True)
def asdi(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float | np.ndarray,
    wavelengths: np.ndarray,
    mode: str = "single",
    ncomp: int = 10,
    mask_center_px: float | None = None,
    sdi_method: str = "pca",
    sdi_ncomp: int = 1,
    delta_sep: float = 1.0,
    min_channels: int = 1,
    asize: float | None = None,
    adi_algorithm: str = "pca_annular",
    adi_params: Mapping[str, Any] | None = None,
    collapse: str = "median",
    collapse_wl: str = "mean",
    interpolation: str = "bilinear",
) -> tuple[np.ndarray, np.ndarray]:
    """ASDI, angular + spectral: one PCA on the wavelengths x frames library, or SDI then ADI.

    ``mode='single'``: full-frame PCA with ``ncomp`` components of the combined rescaled library
    (``mask_center_px`` masks the star's core). ``mode='double'``: SDI per frame (``sdi_method``,
    ``sdi_ncomp``, ``delta_sep``, ``min_channels``, ``asize``) then the registered ADI algorithm
    ``adi_algorithm`` with ``adi_params`` (e.g. ``{'ncomp': 5}``) on each wavelength.
    Returns ``(final_image (y, x), per_wavelength_cube (wavelengths, y, x))``.
    """
    cube, angles, wl = check_spectral_inputs(cube, angles, wavelengths)
    reference_fwhm(fwhm, wl)  # validates fwhm
    if mode not in ASDI_MODES:
        raise ValueError(f"unknown ASDI mode {mode!r}; use one of {ASDI_MODES}")
    n_wl, n_fr = cube.shape[:2]
    if mode == "single":
        if not 1 <= ncomp <= n_wl * n_fr:
            raise ValueError(f"ncomp={ncomp} must be between 1 and wavelengths x frames ({n_wl * n_fr})")
        scale = wl.max() / wl
        rescaled = np.concatenate([rescale_frames(cube[w], scale[w]) for w in range(n_wl)])
        _, res = next(pca_residuals(rescaled, ncomp, mask_center_px=mask_center_px))
        res = res.reshape(cube.shape)
        residuals = np.stack([rescale_frames(res[w], 1.0 / scale[w]) for w in range(n_wl)])
        per_wl = derotate_each_wavelength(residuals, angles, collapse, interpolation)
        return combine_wavelengths(per_wl, None, collapse_wl)

    spec = get_algorithm(adi_algorithm)
    if spec.spectral or spec.needs_reference:
        raise ValueError(
            f"adi_algorithm must be an ADI algorithm; {adi_algorithm!r} is spectral or needs a reference"
        )
    residuals = sdi_residuals(
        cube,
        wl,
        fwhm=fwhm,
        method=sdi_method,
        ncomp=sdi_ncomp,
        delta_sep=delta_sep,
        min_channels=min_channels,
        asize=asize,
    )
    params = dict(adi_params or {})
    params.setdefault("collapse", collapse)
    params.setdefault("interpolation", interpolation)
    fwhm_wl = wavelength_fwhm(fwhm, wl)
    per_wl = np.stack(
        [
            np.asarray(
                spec.function(np.nan_to_num(residuals[w]), angles, fwhm=float(fwhm_wl[w]), **params),
                dtype=np.float32,
            )
            for w in range(n_wl)
        ]
    )
    return combine_wavelengths(per_wl, spectral_coverage(residuals), collapse_wl)
