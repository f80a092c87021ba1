"""Contrast versus conditions across products: the arrays, their correlations and the figure.

Input rows (one per Level 2 product, as :func:`hcdc.archive.telemetry.contrast_conditions`
gives them): ``contrast`` = list of ``{"separation_arcsec", "contrast": [per wavelength]}``
(5-sigma contrast, None outside the curve) and the Level 1 medians ``strehl_median``,
``seeing_median_arcsec``, ``tau0_median_s`` (s), ``wind_median_m_s``. Correlations are taken
between log10(contrast) and each condition (Pearson and Spearman, :func:`correlation`), over
the products where both are finite; NaN with fewer than three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hcdc.science.monitoring.residuals import correlation

__all__ = ["CONDITIONS", "contrast_at", "separations", "contrast_correlations", "contrast_conditions_png"]

#: condition name -> (row key, axis label, scale applied for display)
CONDITIONS: dict[str, tuple[str, str, float]] = {
    "strehl": ("strehl_median", "median Strehl", 1.0),
    "seeing": ("seeing_median_arcsec", "median seeing (arcsec, line of sight)", 1.0),
    "tau0": ("tau0_median_s", "median tau0 (ms)", 1e3),
    "wind": ("wind_median_m_s", "median wind (m/s)", 1.0),
}


def separations(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The separations (arcsec) any row has a contrast at, sorted."""
    return sorted({float(c["separation_arcsec"]) for r in rows for c in r["contrast"]})


def contrast_at(
    rows: Sequence[Mapping[str, Any]], separation_arcsec: float, wavelength: int = 0
) -> np.ndarray:
    """Contrast of each row at one separation and wavelength index (NaN where absent)."""
    out = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        for c in r["contrast"]:
            values = c["contrast"] or []
            if abs(float(c["separation_arcsec"]) - separation_arcsec) < 1e-9 and wavelength < len(values):
                out[i] = np.nan if values[wavelength] is None else float(values[wavelength])
    return out


def _condition(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])


def _finite_or_none(value: float | int) -> float | int | None:
    return value if np.isfinite(value) else None


def contrast_correlations(
    rows: Sequence[Mapping[str, Any]], wavelength: int = 0
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{separation: {condition: Correlation.as_dict()}}`` of log10(contrast) with each
    condition of :data:`CONDITIONS` (separation keys formatted like ``"0.2"``; None where the
    correlation is undefined: fewer than three products or a constant series)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for sep in separations(rows):
        values = contrast_at(rows, sep, wavelength)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_c = np.where(values > 0, np.log10(values), np.nan)
        out[f"{sep:g}"] = {
            name: {
                k: _finite_or_none(v) for k, v in correlation(log_c, _condition(rows, key)).as_dict().items()
            }
            for name, (key, _, _) in CONDITIONS.items()
        }
    return out


def contrast_conditions_png(
    path: str | Path, rows: Sequence[Mapping[str, Any]], wavelength: int = 0, title: str | None = None
) -> Path:
    """Write a figure: one panel per condition (Strehl, seeing, tau0, wind) with the 5-sigma
    contrast (log scale) of every product at each separation against it. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(CONDITIONS), figsize=(4 * len(CONDITIONS), 4), sharey=True, constrained_layout=True
    )
    for ax, (name, (key, label, scale)) in zip(axes, CONDITIONS.items(), strict=True):
        x = _condition(rows, key) * scale
        for sep in separations(rows):
            y = contrast_at(rows, sep, wavelength)
            ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
            ax.plot(x[ok], y[ok], "o", label=f'{sep:g}"')
        ax.set_xlabel(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.set_title(name)
    axes[0].set_ylabel("5-sigma contrast")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(title="separation", fontsize=8)
    fig.suptitle(title or f"contrast versus conditions ({len(rows)} product(s))")
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
