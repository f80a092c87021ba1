"""The IRDIS Level 1 recipe writes a per-frame AO conditions table from the sequence's SPARTA
files, matching the simulator's true conditions; without telemetry every frame says so."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.sphere.irdis.frame_conditions import (
    AO_FILES_EXTNAME,
    read_conditions,
    residual_intensity,
)
from hcdc.instruments.sphere.irdis.level1 import read_level1
from hcdc.pipeline.registry import run_recipe
from hcdc.science.monitoring.residuals import correlation


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night")
    return simulate_irdis_night(out / "raw", seed=7, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=True)


def test_level1_product_has_per_frame_conditions(night, tmp_path):
    raw = sorted([f.path for f in night.files] + night.ao_telemetry.files)
    result = run_recipe("level1-irdis", {"raw": raw}, ["science_dim=32", "psf_dim=16"], work_dir=tmp_path)
    summary = result.outputs["summary"]
    product = read_level1(result.outputs["product"])
    table = read_conditions(result.outputs["product"])
    n = product.cube.shape[1]
    assert len(table) == n and summary["frames_with_ao_telemetry"] == n
    assert summary["ao_telemetry_files"] == len(night.ao_telemetry.files)
    np.testing.assert_allclose(table["MJD"], product.frames["MJD"])
    truth = night.ao_telemetry.truth_at(np.asarray(product.frames["MJD"]))
    np.testing.assert_allclose(table["STREHL"], truth["strehl"], rtol=0.05)
    np.testing.assert_allclose(table["SEEING"], truth["seeing"], rtol=0.07)
    np.testing.assert_allclose(table["TAU0"], truth["tau0_s"], rtol=0.15)
    with fits.open(result.outputs["product"] / "frames.fits") as hdul:
        assert hdul["CONDITIONS"].header["AO_DT"] == pytest.approx(30.0, abs=1e-3)
        assert hdul["CONDITIONS"].header["AO_COVER"] == 1.0
        files = hdul[AO_FILES_EXTNAME].data
        assert sorted(files["FILE"]) == sorted(p.name for p in night.ao_telemetry.files)
        assert all(len(s) == 64 for s in files["SHA256"])


def test_level1_product_without_telemetry_flags_every_frame(night, tmp_path):
    raw = sorted(f.path for f in night.files)
    result = run_recipe("level1-irdis", {"raw": raw}, ["science_dim=32", "psf_dim=16"], work_dir=tmp_path)
    table = read_conditions(result.outputs["product"])
    assert len(table) > 0 and table["NO_TELEMETRY"].all() and np.isnan(table["STREHL"]).all()
    assert result.outputs["summary"]["frames_with_ao_telemetry"] == 0
    summary = result.outputs["summary"]["ao_conditions"]
    assert summary["frames_with_telemetry"] == 0 and summary["frames"] == len(table)
    assert summary["strehl_median"] is None and summary["sampling_interval_s"] is None


def test_residual_halo_of_level1_frames_follows_the_strehl(tmp_path):
    """End to end: in a night whose seeing varies fast (log-sigma 0.5, 5 min correlation) the
    Level 1 frames' coronagraphic residual intensity (8-20 px from the star) follows 1 - Strehl
    of the per-frame conditions table (measured Pearson r = 0.81 for this seed) and anti-
    correlates with tau0."""
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night
    from hcdc.instruments.sphere.irdis.simulate_ao import AoTelemetrySpec
    from hcdc.science.simulation.ao_conditions import TurbulenceModel

    spec = AoTelemetrySpec(
        turbulence=TurbulenceModel(seeing_sigma_ln=0.5, seeing_tau_s=300.0, wind_tau_s=300.0)
    )
    night = simulate_irdis_night(tmp_path / "raw", seed=7, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=spec)
    raw = sorted([f.path for f in night.files] + night.ao_telemetry.files)
    result = run_recipe(
        "level1-irdis", {"raw": raw}, ["science_dim=64", "psf_dim=16"], work_dir=tmp_path / "l1"
    )
    table = read_conditions(result.outputs["product"])
    # 2.4-6 lambda/D (8-20 px at H2): the servo-lag halo inside the 64 px test frames
    residual, annulus = residual_intensity(result.outputs["product"], radius_ld=4.2, width_ld=3.6)
    assert annulus["inner_px"] == pytest.approx(8.0, abs=0.3) and annulus["outer_px"] == pytest.approx(
        20.0, abs=0.6
    )
    assert np.ptp(table["STREHL"]) > 0.08
    assert correlation(residual, 1.0 - np.asarray(table["STREHL"])).pearson_r > 0.6
    # the turbulence speed drives it too (through the servo-lag term of the Strehl)
    assert correlation(residual, table["TAU0"]).spearman_rho < -0.3


def test_version_1_0_still_reruns_without_conditions(night, tmp_path):
    """Products of level1-irdis 1.0 (before the conditions) can be rerun by their version."""
    raw = sorted([f.path for f in night.files] + night.ao_telemetry.files)
    result = run_recipe(
        "level1-irdis", {"raw": raw}, ["science_dim=32", "psf_dim=16"], work_dir=tmp_path, version="1.0"
    )
    assert result.version == "1.0" and read_conditions(result.outputs["product"]) is None
    assert "ao_conditions" not in result.outputs["summary"]
