"""The residual test of calibrator vetting on simulations with known truth: a single uniform
disk (closure phases 0/180 plus noise) passes, a binary fails on its closure phases, a wrong
catalogue diameter is flagged; closure phases of a disk past its first null are 180°."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.interferometry.fitting import Observables
from hcdc.science.interferometry.models import binary, uniform_disk
from hcdc.science.interferometry.vetting import CP_CHI2_R_BINARY, residual_test, ud_closure_phase


def _triangles(rng: np.random.Generator, n: int = 40, n_wave: int = 6) -> dict[str, np.ndarray]:
    """Random triangles of baselines 20-150 m in H band [m]."""
    wl = np.linspace(1.55e-6, 1.75e-6, n_wave)
    out = {}
    for i in (1, 2):
        length, angle = rng.uniform(20, 150, n), rng.uniform(0, 2 * np.pi, n)
        out[f"u{i}"] = np.repeat(length * np.sin(angle), n_wave)
        out[f"v{i}"] = np.repeat(length * np.cos(angle), n_wave)
    out["wl"] = np.tile(wl, n)
    return out


def _observe(
    rng: np.random.Generator, visibility, sigma_v2: float = 0.01, sigma_cp: float = 1.0
) -> Observables:  # noqa: ANN001
    """V² on the triangles' first baselines and closure phases of ``visibility(u, v, λ)``."""
    t = _triangles(rng)
    u3, v3 = -(t["u1"] + t["u2"]), -(t["v1"] + t["v2"])
    bispectrum = (
        visibility(t["u1"], t["v1"], t["wl"])
        * visibility(t["u2"], t["v2"], t["wl"])
        * visibility(u3, v3, t["wl"])
    )
    vis2 = np.abs(visibility(t["u1"], t["v1"], t["wl"])) ** 2
    return Observables(
        u=t["u1"], v=t["v1"], wavelength=t["wl"],
        vis2=vis2 + rng.normal(0, sigma_v2, vis2.size), vis2_err=np.full(vis2.size, sigma_v2),
        t3_u1=t["u1"], t3_v1=t["v1"], t3_u2=t["u2"], t3_v2=t["v2"], t3_wavelength=t["wl"],
        t3phi=np.degrees(np.angle(bispectrum)) + rng.normal(0, sigma_cp, vis2.size),
        t3phi_err=np.full(vis2.size, sigma_cp),
    )  # fmt: skip


def _disk(theta: float):  # noqa: ANN202
    return lambda u, v, wl: uniform_disk(theta, np.hypot(u, v) / wl).astype(complex)


def test_single_star_passes_and_binary_fails() -> None:
    rng = np.random.default_rng(3)
    single = residual_test(_observe(rng, _disk(1.5)), 1.5, 0.03)
    assert not single.binary_suspected and not single.diameter_inconsistent
    assert single.cp_chi2_r < 2 and single.fitted_ud_mas == pytest.approx(1.5, rel=0.05)

    def pair(u, v, wl):  # noqa: ANN001, ANN202 - a 1.5 mas primary, 20 % companion at 4 mas
        return binary(u, v, wl, flux_ratio=0.2, dra_mas=3.0, ddec_mas=2.6, theta1_mas=1.5)

    double = residual_test(_observe(rng, pair), 1.5, 0.03)
    assert double.binary_suspected and double.cp_chi2_r > 10 * CP_CHI2_R_BINARY


def test_wrong_catalogue_diameter_is_flagged() -> None:
    rng = np.random.default_rng(4)
    test = residual_test(_observe(rng, _disk(2.0)), 1.2, 0.02)
    assert test.diameter_inconsistent and not test.binary_suspected
    assert test.vis2_chi2_r_catalogue > 10 * test.vis2_chi2_r_fit


def test_disk_closure_phase_is_180_past_one_null() -> None:
    """A 6 mas disk resolved past its first null on some baselines has closure phases of 180°
    there, which the test must not take for asymmetry, even with a fitted diameter that puts
    a baseline on the other side of a null."""
    rng = np.random.default_rng(5)
    data = _observe(rng, _disk(6.0), sigma_cp=0.5)
    model = ud_closure_phase(data, 6.0)
    assert set(np.unique(model)) == {0.0, 180.0}
    assert not residual_test(data, 6.0, 0.1).binary_suspected
