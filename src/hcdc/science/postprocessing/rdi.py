"""Reference star differential imaging (RDI) with a library of reference-star frames.

For every science frame the reference frames whose speckles look most like it are selected by
Pearson correlation in an annulus (``corr_inner``..``corr_outer`` px), keeping the ``n_keep``
best or a ``fraction`` of the library; the frame's speckle model is then built from those frames
only, either by KLIP/PCA (Soummer et al. 2012; ``method='pca'``, the first ``ncomp`` Karhunen-Loève
modes of the selected frames) or by least squares (``method='lstsq'``, LOCI-like coefficients of
the selected frames, Tikhonov-regularised). Both work over the region
``inner_radius``..``outer_radius`` px, with every image's spatial mean over that region removed
first (KLIP). The residuals are derotated and combined like any ADI reduction (``angles`` are the
science frames' derotation angles); since the library holds no companion, RDI does not need
field rotation and does not self-subtract (only the projection of the companion on the library
is lost).

``rdi_adi`` (RDI+ADI) adds the science frames themselves to each frame's candidate pool, as in
pyKLIP's RDI+ADI mode: science frame ``j`` may model frame ``i`` only when the field rotated
between them by at least ``delta_rot`` FWHM at ``rot_radius`` px (default 2 FWHM; set it to the
separation that matters: a companion closer in subtracts itself partly, one farther out not at
all); library frames are always allowed. With little rotation no science frame qualifies and
``rdi_adi`` is ``rdi``.

This is the per-frame library selection of pyKLIP's RDI mode and of Ruane et al. (2019, AJ 157,
118, Sect. 3); the cost is one science x reference Gram matrix plus one small eigen-decomposition
(``n_keep`` x ``n_keep``) per science frame, batched.
"""

from __future__ import annotations

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.base import check_adi_inputs, derotate_and_collapse, register_algorithm

__all__ = [
    "AnnulusCorrelation",
    "CONDITION_COLUMNS",
    "TELEMETRY_COLUMNS",
    "conditions_distance",
    "rank_references",
    "reference_correlation",
    "select_references",
    "rdi_residuals",
    "rdi",
    "rdi_adi",
    "adi_allowed",
]

RDI_METHODS = ("pca", "lstsq")


def _field_limits(
    shape: tuple[int, ...], inner: float | None, outer: float | None, fwhm: float
) -> tuple[float, float]:
    cy, cx = geometry.frame_center(shape)
    edge = float(min(cy, cx, shape[-2] - 1 - cy, shape[-1] - 1 - cx)) + 0.5
    r_in = float(fwhm if inner is None else inner)
    r_out = float(edge if outer is None else outer)
    if not 0 <= r_in < r_out:
        raise ValueError(f"empty region: inner radius {r_in} px, outer radius {r_out} px")
    return r_in, r_out


def _standardise(matrix: np.ndarray) -> np.ndarray:
    """Rows minus their mean, divided by their norm (float64); constant rows become 0."""
    matrix = matrix.astype(np.float64)
    matrix = matrix - matrix.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norm > 0, norm, 1.0)


def reference_correlation(cube: np.ndarray, reference: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    """Pearson correlation (science frames x reference frames) over the annulus ``r_in <= r < r_out`` px."""
    mask = geometry.annulus_mask(cube.shape, r_in, r_out).ravel()
    if not mask.any():
        raise ValueError(f"the correlation annulus {r_in}-{r_out} px holds no pixel")
    sci = np.nan_to_num(cube.reshape(cube.shape[0], -1)[:, mask])
    ref = np.nan_to_num(reference.reshape(reference.shape[0], -1)[:, mask])
    return _standardise(sci) @ _standardise(ref).T


class AnnulusCorrelation:
    """Mean Pearson correlation of reference frames with a set of science frames over the
    annulus ``r_in <= r < r_out`` px, the science side prepared once (a library search compares
    thousands of frames with the same science frames).

    The mean over science frames of the correlation with reference frame ``j`` is the dot product
    of the mean standardised science row with ``j``'s standardised row, so each reference frame
    costs one pass over its annulus pixels.
    """

    def __init__(self, cube: np.ndarray, r_in: float, r_out: float) -> None:
        self.mask = geometry.annulus_mask(cube.shape, r_in, r_out).ravel()
        if not self.mask.any():
            raise ValueError(f"the correlation annulus {r_in}-{r_out} px holds no pixel")
        self.shape = cube.shape[1:]
        sci = np.nan_to_num(np.asarray(cube).reshape(cube.shape[0], -1)[:, self.mask])
        self.mean_row = _standardise(sci).mean(axis=0)

    def mean_correlation(self, reference: np.ndarray) -> np.ndarray:
        """(frames_ref,) mean correlation of each reference frame (frames_ref, y, x) with the
        science frames."""
        if reference.shape[1:] != self.shape:
            raise ValueError(
                f"reference frames {reference.shape[1:]} differ from the science frames {self.shape}"
            )
        ref = np.nan_to_num(reference.reshape(reference.shape[0], -1)[:, self.mask])
        return _standardise(ref) @ self.mean_row


#: per-frame conditions compared by :func:`conditions_distance` (Level 1 ``CONDITIONS`` columns):
#: line-of-sight seeing (arcsec), tau0 (s), Strehl, wind speed (m/s), airmass
CONDITION_COLUMNS = ("SEEING", "TAU0", "STREHL", "WIND", "AIRMASS")
#: those that come from the AO telemetry; the airmass comes from the pointing and the clock, so a
#: frame without telemetry has one: alone it does not make a frame comparable
TELEMETRY_COLUMNS = ("SEEING", "TAU0", "STREHL", "WIND")


def conditions_distance(
    frames: dict[str, np.ndarray],
    reference: dict[str, float],
    quantities: tuple[str, ...] = CONDITION_COLUMNS,
) -> np.ndarray:
    """How far each frame's conditions are from ``reference`` (the science sequence's medians):
    the root mean square, over the ``quantities`` (default :data:`CONDITION_COLUMNS`) known
    (finite and > 0) for both, of ``ln(frame / reference)`` -- so a factor 2 in seeing alone
    gives ``ln 2 = 0.69`` whichever way, and seeing, tau0, Strehl, wind and airmass count alike.
    NaN for a frame with no telemetry quantity (:data:`TELEMETRY_COLUMNS`) in common with the
    reference: a frame without telemetry is not similar because its airmass is.

    On SPARTA data the wind is not independent: tau0 = 0.314 r0 / v and seeing = lambda / r0,
    so ln v = -ln tau0 - ln seeing + const; counting it weighs that combination more."""
    unknown = [q for q in quantities if q not in CONDITION_COLUMNS]
    if unknown:
        raise ValueError(f"unknown conditions quantity {unknown}; known: {', '.join(CONDITION_COLUMNS)}")
    n = len(next(iter(frames.values()))) if frames else 0
    total = np.zeros(n)
    count = np.zeros(n)
    telemetry = np.zeros(n)
    for name in quantities:
        ref = reference.get(name)
        if name not in frames or ref is None or not np.isfinite(ref) or ref <= 0:
            continue
        values = np.asarray(frames[name], dtype=float)
        ok = np.isfinite(values) & (values > 0)
        logs = np.zeros(n)
        logs[ok] = np.log(values[ok] / ref)
        total += logs**2
        count += ok
        if name in TELEMETRY_COLUMNS:
            telemetry += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(telemetry > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)


def rank_references(
    correlation: np.ndarray,
    distance: np.ndarray | None = None,
    weight: float = 0.0,
    n_keep: int | None = None,
) -> np.ndarray:
    """Indices of the best ``n_keep`` reference frames (all when None), best first, by the score
    ``correlation - weight * distance`` (:func:`conditions_distance`). A frame with an unknown
    distance (NaN) counts as the least similar known (the largest finite distance; 0 when none
    is known). ``weight = 0`` (or no ``distance``) is the ranking by correlation alone, ties in
    input order."""
    correlation = np.asarray(correlation, dtype=float)
    if weight < 0:
        raise ValueError(f"the conditions weight must be >= 0; got {weight}")
    score = correlation
    if weight > 0 and distance is not None:
        distance = np.asarray(distance, dtype=float)
        if distance.shape != correlation.shape:
            raise ValueError(f"distance {distance.shape} and correlation {correlation.shape} differ")
        known = np.isfinite(distance)
        worst = float(distance[known].max()) if known.any() else 0.0
        score = correlation - weight * np.where(known, distance, worst)
    order = np.argsort(-score, kind="stable")
    return order if n_keep is None else order[:n_keep]


def _n_selected(n_ref: int, n_keep: int | None, fraction: float | None) -> int:
    if n_keep is not None and fraction is not None:
        raise ValueError("give n_keep or fraction, not both")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        return max(1, int(round(fraction * n_ref)))
    if n_keep is None:
        return n_ref
    if not 1 <= n_keep <= n_ref:
        raise ValueError(f"n_keep must be between 1 and the library size ({n_ref}); got {n_keep}")
    return int(n_keep)


def adi_allowed(
    angles: np.ndarray, n_ref: int, *, delta_rot: float, fwhm: float, radius: float
) -> np.ndarray:
    """Which pool frames may model each science frame in RDI+ADI: (science frames, ``n_ref`` +
    science frames) booleans; the ``n_ref`` library frames always, science frame ``j`` for frame
    ``i`` when ``|angles[i] - angles[j]| >= delta_rot * fwhm / radius`` (radians, as degrees;
    ``radius`` px > 0). A frame never models itself."""
    if not radius > 0 or not delta_rot >= 0:
        raise ValueError(f"need radius > 0 and delta_rot >= 0; got {radius}, {delta_rot}")
    angles = np.asarray(angles, dtype=float)
    min_angle = np.degrees(delta_rot * fwhm / radius)
    diff = np.abs(angles[:, None] - angles[None, :])
    own = (diff >= min_angle) & ~np.eye(angles.size, dtype=bool)
    return np.concatenate([np.ones((angles.size, n_ref), dtype=bool), own], axis=1)


def select_references(
    cube: np.ndarray,
    reference: np.ndarray,
    *,
    r_in: float,
    r_out: float,
    n_keep: int | None = None,
    fraction: float | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best-correlated reference frames of every science frame.

    Returns ``(indices, correlation)``: ``indices`` (science frames, n) holds, for each science
    frame, the indices into ``reference`` of its ``n`` most correlated reference frames (Pearson
    correlation over the annulus ``r_in``..``r_out`` px), best first; ``correlation`` is the full
    (science frames x reference frames) matrix. ``n = n_keep``, or ``round(fraction * library)``,
    or the whole library when neither is given. ``allowed`` (science frames x reference frames,
    booleans; :func:`adi_allowed`) restricts each frame's choice; ``n`` is then at most the
    smallest number of frames any science frame is allowed.
    """
    corr = reference_correlation(cube, reference, r_in, r_out)
    n = _n_selected(reference.shape[0], n_keep, fraction)
    ranked = corr
    if allowed is not None:
        if allowed.shape != corr.shape:
            raise ValueError(f"allowed has shape {allowed.shape}; expected {corr.shape}")
        n = min(n, int(allowed.sum(axis=1).min()))
        if n < 1:
            raise ValueError("a science frame has no allowed reference frame")
        ranked = np.where(allowed, corr, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :n]
    return order, corr


def rdi_residuals(
    cube: np.ndarray,
    reference: np.ndarray,
    *,
    fwhm: float,
    ncomp: int = 10,
    method: str = "pca",
    n_keep: int | None = None,
    fraction: float | None = None,
    corr_inner: float | None = None,
    corr_outer: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    angles: np.ndarray | None = None,
    delta_rot: float | None = None,
    rot_radius: float | None = None,
) -> np.ndarray:
    """Science frames minus their model from the selected reference frames (frames, y, x).

    NaN outside the processed region. With ``delta_rot`` (and the frames' ``angles``, deg) the
    science frames join the pool under the rotation rule of :func:`adi_allowed` at ``rot_radius``
    px (default 2 FWHM) (RDI+ADI).
    """
    reference = np.asarray(reference, dtype=np.float32)
    if reference.ndim != 3 or reference.shape[1:] != cube.shape[1:]:
        raise ValueError(
            f"the reference library must be (frames_ref, y, x) with the science frame size {cube.shape[1:]}; "
            f"got {reference.shape}"
        )
    if method not in RDI_METHODS:
        raise ValueError(f"unknown RDI method {method!r}; use one of {RDI_METHODS}")
    r_in, r_out = _field_limits(cube.shape, inner_radius, outer_radius, fwhm)
    c_in = r_in if corr_inner is None else corr_inner
    c_out = r_out if corr_outer is None else corr_outer
    allowed = None
    if delta_rot is not None:
        if angles is None:
            raise ValueError("RDI+ADI (delta_rot) needs the frames' angles")
        allowed = adi_allowed(
            angles,
            reference.shape[0],
            delta_rot=delta_rot,
            fwhm=fwhm,
            radius=2.0 * fwhm if rot_radius is None else rot_radius,
        )
        reference = np.concatenate([reference, np.asarray(cube, dtype=np.float32)])
    indices, _ = select_references(
        cube, reference, r_in=c_in, r_out=c_out, n_keep=n_keep, fraction=fraction, allowed=allowed
    )
    n_sel = indices.shape[1]
    if method == "pca" and not 1 <= ncomp <= n_sel:
        raise ValueError(
            f"ncomp={ncomp} must be between 1 and the number of selected reference frames ({n_sel})"
        )

    region = geometry.annulus_mask(cube.shape, r_in, r_out).ravel()
    sci = np.nan_to_num(cube.reshape(cube.shape[0], -1)[:, region].astype(np.float64))
    ref = np.nan_to_num(reference.reshape(reference.shape[0], -1)[:, region].astype(np.float64))
    sci -= sci.mean(axis=1, keepdims=True)
    ref -= ref.mean(axis=1, keepdims=True)
    gram = ref @ ref.T  # (n_ref, n_ref)
    cross = sci @ ref.T  # (n_sci, n_ref): <science_i, reference_j>

    rows = np.arange(cube.shape[0])[:, None]
    g_sel = gram[indices[:, :, None], indices[:, None, :]]  # (n_sci, n_sel, n_sel)
    b_sel = cross[rows, indices]  # (n_sci, n_sel)
    if method == "pca":
        # KLIP: projection on the first ncomp KL modes of the selected frames, written in the
        # frame basis: weights = E_k diag(1/lambda_k) E_k^T (L t).
        values, vectors = np.linalg.eigh(g_sel)
        values, vectors = values[:, ::-1][:, :ncomp], vectors[:, :, ::-1][:, :, :ncomp]
        positive = values > values[:, :1] * 1e-12
        inv = np.where(positive, 1.0 / np.where(positive, values, 1.0), 0.0)
        weights = np.einsum("fik,fk,fjk,fj->fi", vectors, inv, vectors, b_sel)
    else:
        scale = np.mean(np.diagonal(g_sel, axis1=1, axis2=2), axis=1)
        g_reg = g_sel + (regularization * scale)[:, None, None] * np.eye(n_sel)[None]
        weights = np.linalg.solve(g_reg, b_sel[:, :, None])[:, :, 0]

    full_weights = np.zeros((cube.shape[0], reference.shape[0]))
    np.add.at(full_weights, (np.broadcast_to(rows, indices.shape), indices), weights)
    out = np.full((cube.shape[0], cube.shape[1] * cube.shape[2]), np.nan, dtype=np.float32)
    out[:, region] = sci - full_weights @ ref
    return out.reshape(cube.shape)


@register_algorithm("rdi", needs_reference=True)
def rdi(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    reference: np.ndarray,
    ncomp: int = 10,
    method: str = "pca",
    n_keep: int | None = None,
    fraction: float | None = None,
    corr_inner: float | None = None,
    corr_outer: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    collapse: str = "median",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """RDI: per-frame best-correlated reference frames, PCA (or least-squares) model, derotate, combine.

    ``reference``: (frames_ref, y, x) library on the science frame grid (star on the same pixel).
    ``n_keep`` / ``fraction``: how many reference frames each science frame keeps (default all),
    ranked by Pearson correlation over ``corr_inner``..``corr_outer`` px (default: the processed
    region ``inner_radius``..``outer_radius``, default 1 FWHM to the frame edge). ``method``
    ``'pca'`` (``ncomp`` KL modes) or ``'lstsq'``. Returns the north-up image (y, x), zero
    outside the region.
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    residuals = rdi_residuals(
        cube,
        reference,
        fwhm=fwhm,
        ncomp=ncomp,
        method=method,
        n_keep=n_keep,
        fraction=fraction,
        corr_inner=corr_inner,
        corr_outer=corr_outer,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
        regularization=regularization,
    )
    return derotate_and_collapse(
        np.nan_to_num(residuals), angles, collapse=collapse, interpolation=interpolation
    )


@register_algorithm("rdi_adi", needs_reference=True)
def rdi_adi(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    reference: np.ndarray,
    delta_rot: float = 1.0,
    rot_radius: float | None = None,
    ncomp: int = 10,
    method: str = "pca",
    n_keep: int | None = None,
    fraction: float | None = None,
    corr_inner: float | None = None,
    corr_outer: float | None = None,
    inner_radius: float | None = None,
    outer_radius: float | None = None,
    regularization: float = 1e-6,
    collapse: str = "median",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """RDI+ADI: as :func:`rdi`, each science frame also choosing among the other science frames
    rotated by at least ``delta_rot`` FWHM at ``rot_radius`` px (default 2 FWHM;
    :func:`adi_allowed`); ``n_keep`` / ``fraction`` count the library plus the science frames.
    Returns the north-up image."""
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    residuals = rdi_residuals(
        cube,
        reference,
        fwhm=fwhm,
        ncomp=ncomp,
        method=method,
        n_keep=n_keep,
        fraction=fraction,
        corr_inner=corr_inner,
        corr_outer=corr_outer,
        inner_radius=inner_radius,
        outer_radius=outer_radius,
        regularization=regularization,
        angles=angles,
        delta_rot=delta_rot,
        rot_radius=rot_radius,
    )
    return derotate_and_collapse(
        np.nan_to_num(residuals), angles, collapse=collapse, interpolation=interpolation
    )
