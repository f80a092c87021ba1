"""The expected-contrast model recovers a known power law and flags only the product made
worse than its conditions predict (rows built with a known answer)."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.monitoring.expected import expected_contrast_flags, fit_contrast_model

TRUE = {"intercept": -4.2, "seeing": 1.5, "tau0": -0.8, "field_rotation": -0.5}


def _rows(n: int = 24, seed: int = 3, noise_dex: float = 0.05, rotation: bool = True):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        seeing = rng.uniform(0.5, 1.5)
        tau0 = rng.uniform(1.5e-3, 8e-3)
        rot = rng.uniform(10.0, 80.0)
        contrasts = []
        for sep, offset in ((0.2, 0.0), (0.5, -0.7)):
            log_c = (
                TRUE["intercept"]
                + offset
                + TRUE["seeing"] * np.log10(seeing)
                + TRUE["tau0"] * np.log10(tau0 / 1e-3)
                + TRUE["field_rotation"] * np.log10(rot)
            )
            contrasts.append(
                {"separation_arcsec": sep, "contrast": [10 ** (log_c + rng.normal(0, noise_dex))]}
            )
        rows.append(
            {
                "product_id": i + 1,
                "seeing_median_arcsec": seeing,
                "tau0_median_s": tau0,
                "field_rotation_deg": rot if rotation else None,
                "contrast": contrasts,
            }
        )
    return rows


def test_fit_recovers_the_law():
    model = fit_contrast_model(_rows(n=40), 0.2)
    assert model.features == ("seeing", "tau0", "field_rotation") and model.products == 40
    for name, value in TRUE.items():  # ~3 standard errors of the fit (0.05 dex noise)
        assert model.coefficients[name] == pytest.approx(value, abs=0.2)
    assert 0.02 < model.scatter_dex < 0.09
    # without field rotation in the rows the model drops that term
    assert fit_contrast_model(_rows(rotation=False), 0.2).features == ("seeing", "tau0")
    assert fit_contrast_model(_rows(n=3), 0.2) is None  # too few products
    with pytest.raises(ValueError, match="unknown feature"):
        fit_contrast_model(_rows(), 0.2, features=["airmass"])


def test_only_the_degraded_product_is_flagged():
    rows = _rows()
    rows[5]["contrast"][0]["contrast"] = [rows[5]["contrast"][0]["contrast"][0] * 8.0]  # 0.2" only
    rows[9]["contrast"][1]["contrast"] = [rows[9]["contrast"][1]["contrast"][0] * 2.0]  # within limits
    flags = expected_contrast_flags(rows, (0.2, 0.5, 1.0))
    assert [f["product_id"] for f in flags if f["flagged"]] == [6]
    entry = flags[5]["separations"][0]
    assert entry["ratio"] == pytest.approx(8.0, rel=0.35) and entry["limit_ratio"] == 3.0
    assert entry["fitted_on"] == 23  # leave one out
    assert flags[5]["separations"][2]["expected"] is None  # no contrast at 1.0" anywhere
    with pytest.raises(ValueError, match="factor"):
        expected_contrast_flags(rows, factor=0.5)
