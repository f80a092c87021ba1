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


def _rows_with_magnitude(n: int = 30, seed: int = 11, slope: float = 0.3, known: float = 1.0):
    """Rows whose contrast also grows by ``slope`` dex per magnitude of the star (H from 4 to
    11: the photon-noise-limited regime of faint stars); a fraction ``known`` of them has the
    magnitude (the others: star unknown to the Target Data Base)."""
    rng = np.random.default_rng(seed)
    rows = _rows(n=n, seed=seed)
    for row in rows:
        mag = rng.uniform(4.0, 11.0)
        for entry in row["contrast"]:
            entry["contrast"] = [entry["contrast"][0] * 10 ** (slope * (mag - 5.0))]
        row["star_magnitude"] = mag if rng.uniform() < known else None
    return rows


def test_star_magnitude_improves_the_fit():
    """With contrast depending on the star's magnitude, the model with the magnitude term
    recovers the slope and the conditions' exponents with the noise's scatter; the model
    without it leaves the magnitude in the residuals (scatter ~18x larger here: 0.46 against
    0.025 dex) and its exponents absorb part of it. Without the term, leave-one-out flags faint
    stars as instrument problems and misses the product really degraded; with it, only that
    product is flagged."""
    rows = _rows_with_magnitude()
    with_mag = fit_contrast_model(rows, 0.2)
    without = fit_contrast_model(rows, 0.2, features=["seeing", "tau0", "field_rotation"])
    assert with_mag.features == ("seeing", "tau0", "field_rotation", "star_magnitude")
    assert with_mag.coefficients["star_magnitude"] == pytest.approx(0.3, abs=0.03)
    for name, value in TRUE.items():
        assert with_mag.coefficients[name] == pytest.approx(value, abs=0.2)
    assert with_mag.scatter_dex < 0.09 and without.scatter_dex > 5 * with_mag.scatter_dex
    rows[7]["contrast"][0]["contrast"] = [rows[7]["contrast"][0]["contrast"][0] * 8.0]
    flags = expected_contrast_flags(rows, (0.2,))
    assert [f["product_id"] for f in flags if f["flagged"]] == [8]
    assert flags[0]["separations"][0]["features"][-1] == "star_magnitude"
    assert with_mag.coefficients["seeing"] != pytest.approx(without.coefficients["seeing"], abs=0.3)
    # the same rows with the magnitudes unknown: the degraded product is lost in the scatter
    # the magnitudes cause (the limit grows with it), and what is flagged are faint stars
    blind = [{k: v for k, v in r.items() if k != "star_magnitude"} for r in rows]
    blind_flags = expected_contrast_flags(blind, (0.2,))
    assert not blind_flags[7]["flagged"] and blind_flags[7]["separations"][0]["limit_ratio"] > 8
    flagged = [i for i, f in enumerate(blind_flags) if f["flagged"]]
    assert flagged and all(rows[i]["star_magnitude"] > 9.5 for i in flagged)


def test_products_without_magnitude_use_the_model_without_it():
    rows = _rows_with_magnitude(n=40, slope=0.0, known=0.5)
    flags = expected_contrast_flags(rows, (0.2,))
    for row, flag in zip(rows, flags, strict=True):
        (entry,) = flag["separations"]
        assert entry["expected"] is not None
        assert ("star_magnitude" in entry["features"]) == (row["star_magnitude"] is not None)
    # a slope-free world: the fitted magnitude term is ~0
    model = fit_contrast_model(rows, 0.2)
    assert "star_magnitude" in model.features and abs(model.coefficients["star_magnitude"]) < 0.03


def test_products_are_compared_within_their_group():
    """Two groups of 20 products observed in the same conditions: ADI ones following the law
    and RDI ones one decade deeper (reference subtraction). Within groups only the ADI product
    made 8x worse is flagged, each from 19 others of its group; pooled (rows without a group) the
    decade between the groups is scatter, the limit grows beyond 8x and the degraded product is
    missed."""
    adi = _rows(n=20, seed=21)
    rdi = _rows(n=20, seed=22)
    for row in adi:
        row["group"] = "SPHERE/IRDIS DB_H23 pca_annular"
    for row in rdi:
        row["product_id"] += 100
        row["group"] = "SPHERE/IRDIS DB_H23 rdi"
        for entry in row["contrast"]:
            entry["contrast"] = [entry["contrast"][0] / 10.0]
    adi[4]["contrast"][0]["contrast"] = [adi[4]["contrast"][0]["contrast"][0] * 8.0]
    rows = adi + rdi
    flags = expected_contrast_flags(rows, (0.2,))
    assert [f["product_id"] for f in flags if f["flagged"]] == [5]
    assert {f["separations"][0]["fitted_on"] for f in flags} == {19}
    assert flags[4]["separations"][0]["ratio"] == pytest.approx(8.0, rel=0.35)
    pooled = expected_contrast_flags([{k: v for k, v in r.items() if k != "group"} for r in rows], (0.2,))
    assert not pooled[4]["flagged"] and pooled[4]["separations"][0]["limit_ratio"] > 8
    assert pooled[4]["separations"][0]["fitted_on"] == 39
