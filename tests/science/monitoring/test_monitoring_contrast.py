"""Contrast versus conditions (pure): picking contrast values out of product rows, their
correlation with the conditions, the figure -- on rows built with a known law."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.monitoring.contrast import (
    contrast_at,
    contrast_conditions_png,
    contrast_correlations,
    separations,
)


def _rows(seeing: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """Contrast grows as seeing^2 at 0.2" (and 10x deeper at 0.5"); Strehl falls with seeing;
    wind is unrelated noise; the second wavelength is twice the first."""
    rows = []
    for s in seeing:
        c02, c05 = 1e-5 * s**2, 1e-6 * s**2
        rows.append(
            {
                "contrast": [
                    {"separation_arcsec": 0.2, "contrast": [c02, 2 * c02]},
                    {"separation_arcsec": 0.5, "contrast": [c05, None]},
                ],
                "strehl_median": float(np.exp(-0.3 * s)),
                "seeing_median_arcsec": float(s),
                "tau0_median_s": float(0.004 / s),
                "wind_median_m_s": float(rng.uniform(5, 15)),
            }
        )
    return rows


def test_contrast_values_and_correlations_follow_the_law(tmp_path):
    rng = np.random.default_rng(3)
    seeing = rng.uniform(0.4, 1.6, 12)
    rows = _rows(seeing, rng)
    assert separations(rows) == [0.2, 0.5]
    np.testing.assert_allclose(contrast_at(rows, 0.2), 1e-5 * seeing**2)
    np.testing.assert_allclose(contrast_at(rows, 0.2, wavelength=1), 2e-5 * seeing**2)
    assert np.isnan(contrast_at(rows, 0.5, wavelength=1)).all()  # None: outside that curve
    assert np.isnan(contrast_at(rows, 0.3)).all()  # no product has that separation
    corr = contrast_correlations(rows)
    assert set(corr) == {"0.2", "0.5"}
    # log contrast = 2 log seeing + const: rank correlation exactly 1 (-1 for Strehl, tau0)
    assert corr["0.2"]["seeing"]["spearman_rho"] == pytest.approx(1.0)
    assert corr["0.2"]["strehl"]["spearman_rho"] == pytest.approx(-1.0)
    assert corr["0.5"]["tau0"]["spearman_rho"] == pytest.approx(-1.0)
    assert abs(corr["0.2"]["wind"]["spearman_rho"]) < 0.7 and corr["0.2"]["seeing"]["n"] == 12
    # undefined with fewer than three products: None, not NaN (JSON-safe)
    assert contrast_correlations(rows[:2])["0.2"]["seeing"]["pearson_r"] is None
    png = contrast_conditions_png(tmp_path / "c.png", rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    empty = contrast_conditions_png(tmp_path / "empty.png", [])
    assert empty.exists() and contrast_correlations([]) == {}
