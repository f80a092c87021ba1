"""Residual intensity in an annulus and its correlation with a conditions column."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcdc.science.monitoring.residuals import annulus_mask, annulus_mean, correlation


def test_annulus_is_centred_on_n_over_2():
    mask = annulus_mask((9, 9), 0.0, 1.0)
    assert mask.sum() == 1 and mask[4, 4]
    ring = annulus_mask((9, 9), 1.0, 1.5)
    assert ring.sum() == 8  # the 4 direct and 4 diagonal neighbours (r = 1 and sqrt 2)
    with pytest.raises(ValueError, match="holds no pixel"):
        annulus_mask((9, 9), 10.0, 12.0)
    with pytest.raises(ValueError, match="inner < outer"):
        annulus_mask((9, 9), 3.0, 2.0)


def test_annulus_mean_ignores_nan_and_follows_each_frame():
    n = 21
    y, x = np.mgrid[:n, :n] - n // 2
    r = np.hypot(x, y)
    cube = np.stack([np.where((r >= 4) & (r < 6), level, 100.0) for level in (1.0, 2.0, 3.0)])
    cube[1, n // 2, n // 2 + 5] = np.nan
    np.testing.assert_allclose(annulus_mean(cube, 4.0, 6.0), [1.0, 2.0, 3.0])


def test_correlation_known_answers():
    x = np.arange(10.0)
    c = correlation(x, 3 * x + 1)
    assert c.n == 10 and c.pearson_r == pytest.approx(1.0) and c.spearman_rho == pytest.approx(1.0)
    assert correlation(x, -(x**3)).spearman_rho == pytest.approx(-1.0)
    with_nan = correlation(np.append(x, np.nan), np.append(x, 5.0))
    assert with_nan.n == 10
    assert math.isnan(correlation(x, np.ones(10)).pearson_r)  # constant: undefined
    assert math.isnan(correlation(x[:2], x[:2]).spearman_rho)  # too few frames
