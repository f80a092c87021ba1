"""Model fits give the same bits on every run (issue 14: homogeneous fits in bulk must be
reproducible), whatever the memory state: the data are copied to differently aligned buffers and
other arrays are allocated between the runs. The binary refinement's variable scaling is fixed
(``BINARY_X_SCALE``; recipe ``oifits-fit`` 1.1); ``oifits-fit`` 1.0 keeps ``x_scale='jac'`` so
that its fits rerun bit for bit."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from hcdc.instruments.oifits_data import read_observables
from hcdc.pipeline.recipes.interferometry import OifitsFitParameters, _fitter
from hcdc.pipeline.registry import get_recipe
from hcdc.science.interferometry.fitting import (
    BINARY_X_SCALE,
    FitResult,
    Observables,
    fit_binary,
    fit_diameter,
)
from hcdc.science.interferometry.models import binary

RUNS = 5


def _shifted(data: Observables, offset: int) -> Observables:
    """A copy of ``data`` whose arrays start ``offset`` doubles into fresh buffers (another
    alignment, as another process or another moment of the same one would give)."""
    values = {}
    for f in fields(data):
        value = getattr(data, f.name)
        if isinstance(value, np.ndarray):
            buffer = np.empty(value.size + offset, dtype=value.dtype)
            buffer[offset:] = value
            value = buffer[offset:]
        values[f.name] = value
    return Observables(**values)


def _bits(fit: FitResult) -> tuple[str, ...]:
    numbers = [*fit.params.values(), *fit.errors.values(), *fit.errors_scaled.values(), fit.chi2, fit.chi2_r]
    return (*(float(x).hex() for x in numbers), str(fit.n_evaluations))


def _reruns(fit, data: Observables) -> set[tuple[str, ...]]:  # noqa: ANN001
    seen = set()
    clutter = []
    for run in range(RUNS):
        clutter.append(np.random.default_rng(run).random(1000 * run + 17))  # another heap state
        seen.add(_bits(fit(_shifted(data, run % 4))))
    return seen


def _synthetic_binary() -> Observables:
    rng = np.random.default_rng(14)
    n = 60
    length, angle = rng.uniform(20.0, 130.0, n), rng.uniform(0, np.pi, n)
    wl = np.full(n, 1.65e-6)
    u, v = length * np.sin(angle), length * np.cos(angle)
    truth = {"flux_ratio": 0.3, "dra_mas": 4.0, "ddec_mas": -2.5, "theta1_mas": 0.9}
    vis = binary(u, v, wl, **truth)
    u1, v1, u2, v2 = u[: n // 2], v[: n // 2], u[n // 2 :], v[n // 2 :]
    w1 = wl[: n // 2]
    product = (
        binary(u1, v1, w1, **truth)
        * binary(u2, v2, w1, **truth)
        * binary(-(u1 + u2), -(v1 + v2), w1, **truth)
    )
    return Observables(
        u=u,
        v=v,
        wavelength=wl,
        vis2=np.abs(vis) ** 2 + rng.normal(0, 0.01, n),
        vis2_err=np.full(n, 0.01),
        t3_u1=u1,
        t3_v1=v1,
        t3_u2=u2,
        t3_v2=v2,
        t3_wavelength=w1,
        t3phi=np.degrees(np.angle(product)) + rng.normal(0, 0.5, n // 2),
        t3phi_err=np.full(n // 2, 0.5),
    )


@pytest.mark.parametrize("x_scale", [BINARY_X_SCALE, "jac"], ids=["fixed", "jac"])
def test_binary_fit_reruns_bit_identically(x_scale) -> None:
    data = _synthetic_binary()
    seen = _reruns(lambda d: fit_binary(d, max_sep_mas=8.0, x_scale=x_scale), data)
    assert len(seen) == 1, seen
    fit = fit_binary(data, max_sep_mas=8.0, x_scale=x_scale)
    assert fit.params["sep_mas"] == pytest.approx(math.hypot(4.0, -2.5), rel=0.01)
    assert fit.params["flux_ratio"] == pytest.approx(0.3, rel=0.05)


@pytest.mark.shared_data
def test_real_fits_rerun_bit_identically(shared_data: Path) -> None:
    """α Cen A (PIONIER) UD and LD, and a binary fit of ο Leo (GRAVITY) on its first 400 V² and
    200 closure phases (the whole file takes ~30 s a fit on this VM)."""
    real = shared_data / "oifits" / "real"
    alpha = read_observables(real / "PIONIER_alfCenA_2016-05-31.fits")
    assert len(_reruns(lambda d: fit_diameter(d, "ud"), alpha)) == 1
    assert len(_reruns(lambda d: fit_diameter(d, "ld", ld_coefficient=0.3), alpha)) == 1
    omi = read_observables(real / "GRAVITY_omiLeo_2022-02-28.fits")
    cut = {}
    for f in fields(omi):
        value = getattr(omi, f.name)
        if isinstance(value, np.ndarray):
            value = value[:400] if f.name in ("u", "v", "wavelength", "vis2", "vis2_err") else value[:200]
        cut[f.name] = value
    part = Observables(**cut)
    seen = _reruns(lambda d: fit_binary(d, max_sep_mas=6.0), part)
    assert len(seen) == 1, seen


def test_recipe_versions_keep_their_binary_scaling() -> None:
    """``oifits-fit`` 1.1 (newest) fits binaries with the fixed scaling, 1.0 as it always did
    ('jac'): each gives exactly what fit_binary gives with that scaling."""
    newest, old = get_recipe("oifits-fit"), get_recipe("oifits-fit", "1.0")
    assert (newest.version, newest.binary_x_scale) == ("1.1", BINARY_X_SCALE)
    assert old.binary_x_scale == "jac"
    data = _synthetic_binary()
    params = OifitsFitParameters(model="binary", max_sep_mas=8.0)
    for recipe, x_scale in ((newest, BINARY_X_SCALE), (old, "jac")):
        got = _fitter(params, recipe.binary_x_scale)(data)
        assert _bits(got) == _bits(fit_binary(data, max_sep_mas=8.0, x_scale=x_scale))
    # the two scalings reach the same minimum, not the same last bits
    fixed = _fitter(params, newest.binary_x_scale)(data)
    jac = _fitter(params, old.binary_x_scale)(data)
    for key in ("sep_mas", "flux_ratio", "theta1_mas"):
        assert fixed.params[key] == pytest.approx(jac.params[key], rel=1e-4), key
