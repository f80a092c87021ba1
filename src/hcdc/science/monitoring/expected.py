"""Expected 5-sigma contrast from observing conditions, fitted on the archive's own products,
and the flagging of products much worse than their conditions predict (pure functions).

Model, one per separation and wavelength index (a power law in the conditions, the form of the
empirical SPHERE performance relations: the speckle halo grows with seeing and shrinks with the
coherence time, ADI gains with field rotation):

    log10 C = a + b log10(seeing / 1") + c log10(tau0 / 1 ms) [+ d log10(rotation / 1 deg)]
              [+ e (m - 5)]

fitted by least squares on ``log10`` of the measured contrast of the products (rows as
:func:`hcdc.archive.telemetry.contrast_conditions` gives them: ``seeing_median_arcsec`` (line of
sight, arcsec), ``tau0_median_s`` (s), ``field_rotation_deg`` (deg), ``contrast`` =
``[{"separation_arcsec", "contrast": [per wavelength]}]``, ``star_magnitude`` (mag, in the
band of the product's filter)). The field-rotation term is used only when enough products carry
it (``l2-postprocess`` >= 1.3 records it); so is the star's magnitude ``m``, a **linear** term
(magnitudes are already logarithms: where the noise is the star's own photon noise or the
background's rather than speckles, the 5-sigma contrast grows as 10^(0.2 m) to 10^(0.4 m), so
``e`` between 0.2 and 0.4; where speckles dominate, ``e`` is 0), centred on m = 5.

Which terms a product's prediction uses: the richest model whose terms the product itself has
(a product without a known magnitude is predicted by the model without the magnitude, fitted on
the same other products).

A product is flagged when its measured contrast is worse (larger) than the **leave-one-out**
prediction (the model fitted on the other products, so an outlier cannot pull its own
prediction) by more than ``max(factor, 10^(nsigma * scatter))``, ``scatter`` being the robust
(1.4826 MAD) scatter of the other products' residuals in dex.

**Comparable products only**: a row may carry a ``group`` (the archive's: instrument/arm,
set-up and algorithm, :func:`hcdc.archive.telemetry.contrast_conditions`); a product is then
predicted from the other rows of its own group -- an RDI product from RDI products of the same
filter, not from ADI ones (RDI reaches much deeper close in) nor from IFS ones. Rows without a
group form one group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hcdc.science.monitoring.contrast import contrast_at

__all__ = [
    "FEATURES",
    "ContrastModel",
    "row_features",
    "fit_contrast_model",
    "expected_contrast_flags",
]

#: feature name -> (row key, reference value: dividing it before the log, or subtracted from a
#: linear feature)
FEATURES: dict[str, tuple[str, float]] = {
    "seeing": ("seeing_median_arcsec", 1.0),
    "tau0": ("tau0_median_s", 1e-3),
    "field_rotation": ("field_rotation_deg", 1.0),
    "star_magnitude": ("star_magnitude", 5.0),
}
#: features entering linearly (already logarithmic quantities)
LINEAR_FEATURES = frozenset({"star_magnitude"})
REQUIRED = ("seeing", "tau0")
#: the models tried when no feature list is given, richest first
CANDIDATES: tuple[tuple[str, ...], ...] = (
    (*REQUIRED, "field_rotation", "star_magnitude"),
    (*REQUIRED, "star_magnitude"),
    (*REQUIRED, "field_rotation"),
    REQUIRED,
)


def _log_feature(rows: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    key, ref = FEATURES[name]
    values = np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])
    if name in LINEAR_FEATURES:
        return values - ref
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(values / ref), np.nan)


def row_features(row: Mapping[str, Any]) -> set[str]:
    """The features a row has a usable (finite; positive for the log ones) value of."""
    return {name for name in FEATURES if np.isfinite(_log_feature([row], name)[0])}


@dataclass(frozen=True)
class ContrastModel:
    """A fitted model: ``coefficients`` = {"intercept", feature: exponent}; ``scatter_dex``:
    robust scatter of log10 residuals; ``products``: number of products fitted."""

    separation_arcsec: float
    wavelength: int
    features: tuple[str, ...]
    coefficients: dict[str, float]
    scatter_dex: float
    products: int

    def predict(self, row: Mapping[str, Any]) -> float | None:
        """Expected contrast of one row, None when it lacks a feature."""
        total = self.coefficients["intercept"]
        for name in self.features:
            value = float(_log_feature([row], name)[0])
            if not np.isfinite(value):
                return None
            total += self.coefficients[name] * value
        return float(10.0**total)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        return out


def _design(rows: Sequence[Mapping[str, Any]], features: Sequence[str]) -> np.ndarray:
    return np.column_stack([np.ones(len(rows))] + [_log_feature(rows, f) for f in features])


def _robust_scatter(residuals: np.ndarray) -> float:
    if residuals.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))


def fit_contrast_model(
    rows: Sequence[Mapping[str, Any]],
    separation_arcsec: float,
    wavelength: int = 0,
    features: Sequence[str] | None = None,
    min_extra: int = 2,
    available: set[str] | None = None,
) -> ContrastModel | None:
    """Fit the model at one separation on the rows with a finite positive contrast and every
    feature; None with fewer than (number of coefficients + ``min_extra``) such rows.
    ``features`` None: the first of :data:`CANDIDATES` (seeing and tau0, plus field rotation
    and the star's magnitude when enough rows carry them) that can be fitted, using only the
    features in ``available`` when given (those of the row to predict)."""
    for name in features or ():
        if name not in FEATURES:
            raise ValueError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}")
    measured = contrast_at(rows, separation_arcsec, wavelength)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_c = np.where(measured > 0, np.log10(measured), np.nan)
    candidates = (
        [list(features)]
        if features is not None
        else [list(c) for c in CANDIDATES if available is None or set(c) <= available]
    )
    for names in candidates:
        x = _design(rows, names)
        ok = np.isfinite(log_c) & np.isfinite(x).all(axis=1)
        if ok.sum() < x.shape[1] + min_extra:
            continue
        coef, *_ = np.linalg.lstsq(x[ok], log_c[ok], rcond=None)
        residuals = log_c[ok] - x[ok] @ coef
        return ContrastModel(
            separation_arcsec=float(separation_arcsec),
            wavelength=int(wavelength),
            features=tuple(names),
            coefficients={
                "intercept": float(coef[0]),
                **{n: float(c) for n, c in zip(names, coef[1:], strict=True)},
            },
            scatter_dex=_robust_scatter(residuals),
            products=int(ok.sum()),
        )
    return None


def expected_contrast_flags(
    rows: Sequence[Mapping[str, Any]],
    separations_arcsec: Sequence[float] = (0.2, 0.3, 0.5, 1.0),
    wavelength: int = 0,
    factor: float = 3.0,
    nsigma: float = 3.0,
    group_key: str = "group",
) -> list[dict[str, Any]]:
    """For every row (same order) the expected contrast at each separation from the model fitted
    on the *other* rows of its group (``row[group_key]``; module doc), and whether the measured
    one is worse than allowed (module doc). Returns ``[{"product_id", "flagged", "separations":
    [{"separation_arcsec", "measured", "expected", "ratio", "limit_ratio", "flagged",
    "fitted_on", "features"}]}]`` (expected None where no model could be fitted or the row lacks
    a condition)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1 (measured/expected); got {factor}")
    out = []
    for i, row in enumerate(rows):
        group = row.get(group_key)
        others = [r for j, r in enumerate(rows) if j != i and r.get(group_key) == group]
        entries = []
        for sep in separations_arcsec:
            measured = float(contrast_at([row], sep, wavelength)[0])
            model = fit_contrast_model(others, sep, wavelength, available=row_features(row))
            expected = model.predict(row) if model is not None else None
            entry: dict[str, Any] = {
                "separation_arcsec": float(sep),
                "measured": measured if np.isfinite(measured) else None,
                "expected": expected,
                "ratio": None,
                "limit_ratio": None,
                "flagged": False,
                "fitted_on": model.products if model else 0,
                "features": list(model.features) if model else [],
            }
            if model is not None and expected is not None and np.isfinite(measured) and measured > 0:
                scatter = model.scatter_dex if np.isfinite(model.scatter_dex) else 0.0
                limit = max(float(factor), float(10.0 ** (nsigma * scatter)))
                entry["ratio"] = measured / expected
                entry["limit_ratio"] = limit
                entry["flagged"] = bool(measured / expected > limit)
            entries.append(entry)
        out.append(
            {
                "product_id": row.get("product_id"),
                "flagged": any(e["flagged"] for e in entries),
                "separations": entries,
            }
        )
    return out
