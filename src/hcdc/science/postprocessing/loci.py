"""LOCI (Lafrenière et al. 2007) and TLOCI (Marois et al. 2014) for ADI and spectral ADI cubes.

Both algorithms build, for every target frame and every small *subtraction zone*, a linear
combination of the other frames (the references) that reproduces the target's speckles, and
subtract it. They differ only in how the coefficients are chosen.

Geometry (Lafrenière et al. 2007, ApJ 660, 770, Sect. 3 and Fig. 1)
--------------------------------------------------------------------
* The field between ``inner_radius`` and ``outer_radius`` (px) is cut into annuli of radial
  width ``dr`` (px; default 1 FWHM). Each annulus is cut into ``n_seg`` azimuthal sectors; a
  sector is a *subtraction zone* S.
* The *optimisation zone* O of a subtraction zone has the same azimuthal extent and a radial
  extent centred on S, of area ``n_a`` PSF footprints, ``A = n_a * pi * (fwhm/2)**2`` px², with
  radial/azimuthal aspect ratio ``g``: radial width ``max(dr, sqrt(g*A))``; ``n_seg`` follows from
  the azimuthal length ``A / width`` at the annulus radius. O is clipped to the available field,
  so near the star or the frame edge it is smaller than ``A``.
* Reference frames of target ``i`` at radius ``r`` (S's mid radius) are the frames whose
  parallactic rotation relative to frame ``i`` moves a companion by at least ``n_delta`` FWHM
  (a chord of ``n_delta * fwhm`` px on the circle of radius ``r``,
  :func:`hcdc.science.postprocessing.annuli.rotation_threshold`). A target with no such reference
  keeps NaN in that zone (ignored by the combination).

Coefficients
------------
Write the target's pixels in O as ``t`` and the references' as the rows of ``R``; the residual
is ``t - cᵀR``.

* **LOCI** minimises the residual energy in O, ``|t - cᵀR|²``: the least-squares coefficients
  ``c = (R Rᵀ)⁻¹ R t`` of the paper (eq. 2).
* **TLOCI** (Marois et al. 2014, Proc. IAU Symp. 299, 48) chooses coefficients that keep the
  companion, using a forward model of it. Let ``a_j`` be the fraction of a companion's signal in
  the target that reference ``j`` reproduces at the companion position: the normalised overlap
  of the companion PSF in frame ``j`` with that in frame ``i``, ``a_j = A(d_ij) / A(0)``, where
  ``A`` is the autocorrelation of the PSF model (the given off-axis PSF, or a Gaussian of
  ``fwhm``) and ``d_ij = 2 r sin(|Δθ_ij| / 2)`` the companion's displacement between the frames at
  the zone radius (times the companion's flux ratio between the frames when they differ in
  wavelength, from its spectrum). The forward-modelled self-subtraction of coefficients ``c`` is
  ``a·c`` (the companion throughput is ``1 - a·c``). hcdc's TLOCI minimises the residual energy in
  O subject to ``a·c <= max_self_subtraction``: where the least-squares (LOCI) solution
  ``c_L = G⁻¹ R t`` (``G = R Rᵀ``) satisfies the bound it is kept, otherwise the minimum on the
  hyperplane ``a·c = max_self_subtraction`` is taken, ``c = c_L - μ G⁻¹ a`` with
  ``μ = (a·c_L - max_self_subtraction) / (a·G⁻¹a)``. As in SOSIE/TLOCI (Marois et al. 2010, 2014)
  the subtraction zone is left out of the optimisation zone by default, so that the companion
  itself does not bias the coefficients. (Maximising the throughput-normalised S/N
  ``(1 - a·c)² / residual energy`` instead was tried and rejected: its optimum uses negative
  coefficients on overlapping references, amplifying and displacing the companion.)

Both solve one small regularised linear system per target frame and zone, batched over the
target frames with one Gram matrix per zone, so the cost is a few matrix products per zone.
``regularization`` adds ``regularization * mean(diag(G))`` to the diagonal (Tikhonov); with
``svd_cutoff`` set, singular values below ``svd_cutoff * max`` are discarded instead (pseudo-inverse).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hcdc.science import geometry
from hcdc.science.postprocessing.annuli import rotation_threshold
from hcdc.science.postprocessing.base import check_adi_inputs, derotate_and_collapse, register_algorithm

__all__ = [
    "LociZone",
    "loci_zones",
    "psf_overlap",
    "loci_residuals",
    "loci",
    "tloci",
    "tloci_asdi",
]

# Target frames solved together: at most 64, and (batch, n, n) float64 work arrays of at most
# ~1e7 elements (80 MB) when there are many frames.
_BATCH = 64
_BATCH_ELEMENTS = 10_000_000


@dataclass(frozen=True)
class LociZone:
    """One subtraction zone and its optimisation zone, as flat pixel indices of a frame."""

    radius: float  # mid radius of the subtraction zone (px)
    subtraction: np.ndarray  # flat indices of S
    optimization: np.ndarray  # flat indices of O (contains S)


def loci_zones(
    shape: tuple[int, int],
    fwhm: float,
    *,
    n_a: float = 300.0,
    g: float = 1.0,
    dr: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    exclude_subtraction: bool = False,
) -> list[LociZone]:
    """Subtraction and optimisation zones of Lafrenière et al. (2007) for frames of ``shape``.

    Radii in px; ``inner_radius`` defaults to 1 FWHM, ``outer_radius`` to the largest circle
    inside the frame. ``exclude_subtraction``: leave S out of O (SOSIE/TLOCI, Marois et al.
    2010, 2014), so that a companion inside S does not bias the coefficients; O then keeps the
    rest of its area. See the module docstring for the geometry.
    """
    if fwhm <= 0 or n_a <= 0 or g <= 0:
        raise ValueError(f"fwhm, n_a and g must be positive; got fwhm={fwhm}, n_a={n_a}, g={g}")
    ny, nx = shape[-2], shape[-1]
    cy, cx = geometry.frame_center(shape)
    r_max_field = float(min(cy, cx, ny - 1 - cy, nx - 1 - cx)) + 0.5
    r_lo = float(fwhm if inner_radius is None else inner_radius)
    r_hi = float(r_max_field if outer_radius is None else min(outer_radius, r_max_field))
    width = float(fwhm if dr is None else dr)
    if width <= 0 or r_hi <= r_lo:
        raise ValueError(f"empty LOCI field: inner radius {r_lo}, outer radius {r_hi}, dr {width}")
    r = geometry.distance_map(shape).ravel()
    phi = np.arctan2(*geometry.offsets_from_center(shape)).ravel() % (2 * np.pi)
    area = n_a * np.pi * (fwhm / 2.0) ** 2
    # With S left out of O, O must reach beyond S on both sides.
    o_width = max((3.0 if exclude_subtraction else 1.0) * width, np.sqrt(g * area))
    zones: list[LociZone] = []
    edges = np.arange(r_lo, r_hi, width)
    for r0 in edges:
        r1 = min(r0 + width, r_hi)
        r_mid = 0.5 * (r0 + r1)
        n_seg = max(1, int(np.floor(2 * np.pi * r_mid / (area / o_width))))
        o0, o1 = max(r_lo, r_mid - o_width / 2), min(r_hi, r_mid + o_width / 2)
        in_s = (r >= r0) & (r < r1)
        in_o = (r >= min(o0, r0)) & (r < max(o1, r1))
        sector = np.minimum((phi * n_seg / (2 * np.pi)).astype(int), n_seg - 1)
        for k in range(n_seg):
            s_idx = np.flatnonzero(in_s & (sector == k))
            if s_idx.size == 0:
                continue
            o_mask = in_o & (sector == k)
            if exclude_subtraction and np.count_nonzero(o_mask & ~in_s) >= s_idx.size:
                o_mask &= ~in_s
            zones.append(LociZone(r_mid, s_idx, np.flatnonzero(o_mask)))
    return zones


def psf_overlap(distance: np.ndarray, fwhm: float, psf: np.ndarray | None = None) -> np.ndarray:
    """Normalised overlap ``A(d)/A(0)`` of a PSF with itself displaced by ``distance`` px.

    ``A`` is the PSF autocorrelation: the fraction of a companion's matched-filter signal that
    survives in a copy displaced by ``d``. With ``psf=None`` a circular Gaussian of ``fwhm`` px
    is used (``A(d)/A(0) = exp(-d² / (4 σ²))``); otherwise the azimuthally averaged
    autocorrelation of the given (centred, background-free) PSF image; beyond the PSF image the
    overlap is 0.
    """
    distance = np.asarray(distance, dtype=np.float64)
    if psf is None:
        sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-(distance**2) / (4.0 * sigma**2))
    psf = np.nan_to_num(np.asarray(psf, dtype=np.float64))
    if psf.ndim != 2:
        raise ValueError(f"the PSF model must be a 2-D image; got shape {psf.shape}")
    # Zero-pad to avoid wrap-around, autocorrelate with FFTs, then sample the 2-D autocorrelation
    # at distance d in 16 directions (cubic interpolation) and average: the azimuthal mean.
    ny, nx = psf.shape
    spec = np.fft.rfft2(psf, s=(2 * ny, 2 * nx))
    auto = np.fft.fftshift(np.fft.irfft2(np.abs(spec) ** 2, s=(2 * ny, 2 * nx)))
    cy, cx = geometry.frame_center(auto.shape)
    if auto[cy, cx] <= 0:
        raise ValueError("the PSF model has no positive flux; cannot compute its autocorrelation")
    directions = np.linspace(0.0, np.pi, 16, endpoint=False)
    flat_d = distance.ravel()
    yy = cy + flat_d[:, None] * np.sin(directions)[None]
    xx = cx + flat_d[:, None] * np.cos(directions)[None]
    samples = ndimage.map_coordinates(auto, [yy.ravel(), xx.ravel()], order=3, mode="constant", cval=0.0)
    values = samples.reshape(flat_d.size, directions.size).mean(axis=1) / auto[cy, cx]
    return np.clip(values, 0.0, 1.0).reshape(distance.shape)


def _solve_zone(
    gram: np.ndarray,
    allowed: np.ndarray,
    overlap: np.ndarray | None,
    max_self_subtraction: float,
    regularization: float,
    svd_cutoff: float | None,
) -> np.ndarray:
    """Coefficient matrix ``C`` (targets x frames) of one zone: residual_i = x_i - sum_j C[i, j] x_j.

    ``gram``: (n, n) Gram matrix of all frames over O. ``allowed[i, j]``: frame ``j`` may serve
    as a reference of target ``i``. ``overlap[i, j]``: the TLOCI ``a_j`` of target ``i`` (None:
    LOCI). Batched over targets: the reference Gram matrix of each target is embedded in an
    (n, n) system whose unused rows/columns are the identity with a zero right-hand side.
    """
    n = gram.shape[0]
    coeffs = np.zeros((n, n))
    eye = np.eye(n)
    scale = float(np.mean(np.diag(gram))) or 1.0
    batch = max(1, min(_BATCH, _BATCH_ELEMENTS // (n * n)))
    for start in range(0, n, batch):
        rows = np.arange(start, min(start + batch, n))
        use = allowed[rows]
        m = np.where(use[:, :, None] & use[:, None, :], gram[None], 0.0)
        columns = [np.where(use, gram[rows], 0.0)]  # R t for every target (gram is symmetric)
        if overlap is not None:
            columns.append(np.where(use, overlap[rows], 0.0))
        rhs = np.stack(columns, axis=-1)
        if svd_cutoff is None:
            m += np.where(use, regularization * scale, 1.0)[:, :, None] * eye[None]
            sol = np.linalg.solve(m, rhs)
        else:
            w, v = np.linalg.eigh(m)
            keep = w > svd_cutoff * w[:, -1:]
            inv_w = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
            sol = v @ (inv_w[:, :, None] * (np.swapaxes(v, 1, 2) @ rhs))
        c = sol[:, :, 0]
        if overlap is not None:
            # Minimum of the residual energy on the hyperplane a.c = max_self_subtraction, used
            # only where the least-squares solution subtracts more of the companion than that.
            a, g_inv_a = rhs[:, :, 1], sol[:, :, 1]
            excess = np.sum(a * c, axis=1) - max_self_subtraction
            denom = np.sum(a * g_inv_a, axis=1)
            active = (excess > 0) & (denom > 0)
            mu = np.where(active, excess / np.where(active, denom, 1.0), 0.0)
            c = c - mu[:, None] * g_inv_a
        coeffs[rows] = np.where(use, c, 0.0)
    return coeffs


def _loci_core(
    flat: np.ndarray,
    zones: list[LociZone],
    allowed_for: Callable[[LociZone], np.ndarray],
    overlap_for: Callable[[LociZone], np.ndarray] | None,
    *,
    max_self_subtraction: float,
    regularization: float,
    svd_cutoff: float | None,
) -> tuple[np.ndarray, list[float]]:
    """LOCI/TLOCI residuals of the images ``flat`` (n, pixels) zone by zone.

    ``allowed_for(zone)`` gives the (n, n) reference mask, ``overlap_for(zone)`` the (n, n) TLOCI
    overlaps (None: LOCI). Returns the residuals (0 outside the zones, NaN where an image has no
    reference) and the radii of zones where that happened.
    """
    n = flat.shape[0]
    # Outside the zones nothing is subtracted and nothing is kept (0); NaN marks only zones where
    # an image had no reference (ignored by the NaN-aware combination).
    out = np.zeros(flat.shape, dtype=np.float32)
    starved: list[float] = []
    if np.isnan(flat).any():
        flat = np.nan_to_num(flat)  # bad pixels count as 0 in the fits and the subtraction
    for zone in zones:
        allowed = allowed_for(zone)
        allowed[np.arange(n), np.arange(n)] = False
        has_refs = allowed.any(axis=1)
        if not has_refs.all():
            starved.append(zone.radius)
        x_o = flat[:, zone.optimization].astype(np.float64)
        gram = x_o @ x_o.T
        overlap = None if overlap_for is None else overlap_for(zone)
        coeffs = _solve_zone(gram, allowed, overlap, max_self_subtraction, regularization, svd_cutoff)
        x_s = flat[:, zone.subtraction].astype(np.float64)
        res = x_s - coeffs @ x_s
        res[~has_refs] = np.nan
        out[:, zone.subtraction] = res
    return out, starved


def loci_residuals(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    n_delta: float = 0.75,
    n_a: float = 300.0,
    g: float = 1.0,
    dr: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    svd_cutoff: float | None = None,
    exclude_subtraction: bool = False,
    throughput_psf: bool | np.ndarray = False,
    max_self_subtraction: float = 0.1,
) -> np.ndarray:
    """Residual cube (frames, y, x) of LOCI (``throughput_psf=False``) or TLOCI (PSF model given).

    ``throughput_psf``: ``False`` for LOCI; ``True`` for TLOCI with a Gaussian PSF model of
    ``fwhm``; a 2-D PSF image for TLOCI with that model. ``max_self_subtraction``: TLOCI's bound
    on the forward-modelled fraction of companion flux removed.
    Pixels outside the zones are 0; zones where a frame has no valid reference are NaN.
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    n, ny, nx = cube.shape
    if n < 2:
        raise ValueError(f"LOCI needs at least 2 frames; got {n}")
    if n_delta < 0:
        raise ValueError(f"n_delta must be >= 0 (FWHM); got {n_delta}")
    zones = loci_zones(
        (ny, nx),
        fwhm,
        n_a=n_a,
        g=g,
        dr=dr,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
        exclude_subtraction=exclude_subtraction,
    )
    dtheta = np.abs(angles[:, None] - angles[None, :])  # deg
    psf_model = throughput_psf if isinstance(throughput_psf, np.ndarray) else None
    tloci = throughput_psf is not False and throughput_psf is not None

    def allowed_for(zone: LociZone) -> np.ndarray:
        return dtheta >= rotation_threshold(zone.radius, fwhm, n_delta)

    def overlap_for(zone: LociZone) -> np.ndarray:
        # companion displacement between frames: a chord of the circle of radius r
        return psf_overlap(2.0 * zone.radius * np.sin(np.radians(dtheta) / 2.0), fwhm, psf_model)

    out, starved = _loci_core(
        cube.reshape(n, -1),
        zones,
        allowed_for,
        overlap_for if tloci else None,
        max_self_subtraction=max_self_subtraction,
        regularization=regularization,
        svd_cutoff=svd_cutoff,
    )
    if starved:
        warnings.warn(
            f"LOCI: some frames have no reference frame rotated by {n_delta} FWHM at radii "
            f"{min(starved):.1f}-{max(starved):.1f} px; they are left out there (NaN)",
            stacklevel=2,
        )
    return out.reshape(n, ny, nx)


@register_algorithm("loci")
def loci(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    n_delta: float = 0.75,
    n_a: float = 300.0,
    g: float = 1.0,
    dr: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    svd_cutoff: float | None = None,
    exclude_subtraction: bool = False,
    collapse: str = "median",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """LOCI (Lafrenière et al. 2007): least-squares speckle subtraction in annular sectors.

    Parameters (px unless said): ``n_delta`` minimum companion motion between a target and its
    references, in FWHM; ``n_a`` optimisation-zone area in PSF footprints; ``g`` its radial /
    azimuthal aspect ratio; ``dr`` subtraction-annulus width (default 1 FWHM);
    ``inner_radius``/``outer_radius`` field limits; ``regularization`` (Tikhonov, relative to
    the mean Gram diagonal) or ``svd_cutoff`` (relative singular-value cutoff); ``collapse``
    ``'median'``/``'mean'``. Returns the derotated, combined north-up image (y, x), zero where
    no zone reaches.
    """
    res = loci_residuals(
        cube,
        angles,
        fwhm=fwhm,
        n_delta=n_delta,
        n_a=n_a,
        g=g,
        dr=dr,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
        regularization=regularization,
        svd_cutoff=svd_cutoff,
        exclude_subtraction=exclude_subtraction,
    )
    return derotate_and_collapse(res, angles, collapse=collapse, interpolation=interpolation)


@register_algorithm("tloci")
def tloci(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    psf: np.ndarray | None = None,
    max_self_subtraction: float = 0.1,
    n_delta: float = 0.5,
    n_a: float = 300.0,
    g: float = 1.0,
    dr: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    svd_cutoff: float | None = None,
    exclude_subtraction: bool = True,
    collapse: str = "median",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """TLOCI (Marois et al. 2014): LOCI whose coefficients bound the companion self-subtraction.

    Same zones and parameters as :func:`loci` (but S is left out of O by default), plus ``psf``
    (a centred off-axis PSF image used as the companion model; default a Gaussian of ``fwhm``)
    and ``max_self_subtraction`` (largest forward-modelled fraction of a companion's flux the
    references may remove, default 0.1). Returns the derotated, combined north-up image (y, x).
    """
    res = loci_residuals(
        cube,
        angles,
        fwhm=fwhm,
        n_delta=n_delta,
        n_a=n_a,
        g=g,
        dr=dr,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
        regularization=regularization,
        svd_cutoff=svd_cutoff,
        exclude_subtraction=exclude_subtraction,
        throughput_psf=True if psf is None else np.asarray(psf, dtype=np.float64),
        max_self_subtraction=max_self_subtraction,
    )
    return derotate_and_collapse(res, angles, collapse=collapse, interpolation=interpolation)


@register_algorithm("tloci_asdi", spectral=True)
def tloci_asdi(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float | np.ndarray,
    wavelengths: np.ndarray,
    spectrum: np.ndarray | None = None,
    psf: np.ndarray | None = None,
    max_self_subtraction: float = 0.1,
    n_delta: float = 0.5,
    n_a: float = 300.0,
    g: float = 1.0,
    dr: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    svd_cutoff: float | None = None,
    collapse: str = "median",
    collapse_wl: str = "mean",
    interpolation: str = "bilinear",
) -> tuple[np.ndarray, np.ndarray]:
    """Spectral TLOCI (angular + spectral): every frame of every channel is a reference candidate.

    Channels are magnified by ``λmax/λ`` (speckles aligned, see :mod:`.sdi`), so the library of
    a target image is all wavelengths x frames images. In a zone of radius ``R`` a companion at
    ``R`` in target (channel ``w``, frame ``k``) sits at ``R' = R s_v / s_w`` and turned by
    ``angles[j] - angles[k]`` in image (``v``, ``j``); the reference is allowed when that moves it
    by >= ``n_delta`` FWHM (of λmax), and its TLOCI overlap is ``A(d)/A(0)`` times the companion's
    peak-brightness ratio ``(F_v / λ_v²) / (F_w / λ_w²)`` from ``spectrum`` (companion flux per
    wavelength in the cube's units, any scale; default flat). Coefficients as :func:`tloci`
    (residual energy minimised with forward-modelled self-subtraction <= ``max_self_subtraction``;
    S left out of O). ``psf``: (y, x) PSF model at λmax, default a Gaussian. Cost grows as
    (wavelengths x frames)² per zone: suited to IRDIS DBI (2 channels) and IFS subsets.
    Returns ``(final_image (y, x), per_wavelength_cube (wavelengths, y, x))``, 0 where no data.
    """
    from hcdc.science.postprocessing import sdi as sdi_module  # sdi imports pca; keep loci light

    cube, angles, wl = sdi_module.check_spectral_inputs(cube, angles, wavelengths)
    f_ref = sdi_module.reference_fwhm(fwhm, wl)
    if n_delta < 0:
        raise ValueError(f"n_delta must be >= 0 (FWHM); got {n_delta}")
    n_wl, n_fr, ny, nx = cube.shape
    flux = np.ones(n_wl) if spectrum is None else np.asarray(spectrum, dtype=np.float64).ravel()
    if flux.size != n_wl or np.any(~np.isfinite(flux)) or np.any(flux < 0) or not np.any(flux > 0):
        raise ValueError(f"spectrum must hold {n_wl} finite non-negative fluxes, not all 0; got {spectrum}")
    psf_model = None if psf is None else np.asarray(psf, dtype=np.float64)
    scale = wl.max() / wl
    rescaled = np.stack([sdi_module.rescale_frames(cube[w], scale[w]) for w in range(n_wl)])
    zones = loci_zones(
        (ny, nx),
        f_ref,
        n_a=n_a,
        g=g,
        dr=dr,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
        exclude_subtraction=True,
    )
    # image index i = w * n_fr + k
    chan = np.repeat(np.arange(n_wl), n_fr)
    frame = np.tile(np.arange(n_fr), n_wl)
    radial = scale[chan][None, :] / scale[chan][:, None]  # R' / R for (target i, reference j)
    cos_turn = np.cos(np.radians(angles[frame][None, :] - angles[frame][:, None]))
    peak = flux / wl**2  # companion peak brightness per channel after rescaling (up to a constant)
    with np.errstate(divide="ignore", invalid="ignore"):
        brightness = np.where(peak[chan][:, None] > 0, peak[chan][None, :] / peak[chan][:, None], 0.0)

    def displacement(zone: LociZone) -> np.ndarray:
        return zone.radius * np.sqrt(np.maximum(1.0 + radial**2 - 2.0 * radial * cos_turn, 0.0))

    def allowed_for(zone: LociZone) -> np.ndarray:
        return displacement(zone) >= n_delta * f_ref

    def overlap_for(zone: LociZone) -> np.ndarray:
        return psf_overlap(displacement(zone), f_ref, psf_model) * brightness

    out, starved = _loci_core(
        rescaled.reshape(n_wl * n_fr, -1),
        zones,
        allowed_for,
        overlap_for,
        max_self_subtraction=max_self_subtraction,
        regularization=regularization,
        svd_cutoff=svd_cutoff,
    )
    if starved:
        warnings.warn(
            f"TLOCI-ASDI: some images have no reference moving a companion by {n_delta} FWHM at radii "
            f"{min(starved):.1f}-{max(starved):.1f} px; they are left out there (NaN)",
            stacklevel=2,
        )
    in_zones = np.zeros(ny * nx, dtype=bool)
    for zone in zones:
        in_zones[zone.subtraction] = True
    out[:, ~in_zones] = np.nan  # no speckle model outside the zones
    residuals = sdi_module.unscale_residuals(out.reshape(rescaled.shape), scale)
    per_wl = sdi_module.derotate_each_wavelength(residuals, angles, collapse, interpolation)
    return sdi_module.combine_wavelengths(per_wl, sdi_module.spectral_coverage(residuals), collapse_wl)
