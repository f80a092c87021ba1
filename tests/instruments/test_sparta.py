"""SPARTA AO telemetry: file layout, validity, per-frame conditions against the simulator's truth,
and the airmass of the zenith corrections against real SPHERE headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from hcdc.instruments.registry import read_file
from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night
from hcdc.instruments.sphere.irdis.simulate_ao import AoTelemetrySpec
from hcdc.instruments.sphere.sparta import (
    SpartaError,
    frame_conditions,
    read_sparta,
    write_sparta,
)
from hcdc.science.simulation.speckles import speckle_intensity

DAY = 86400.0


def _header(**extra) -> fits.Header:
    h = fits.Header()
    h["INSTRUME"] = "SPHERE"
    h["DATE-OBS"] = "2019-05-01T03:00:00.0000"
    h["RA"], h["DEC"] = 200.0, -30.0
    h["HIERARCH ESO DPR CATG"] = "SCIENCE"
    h["HIERARCH ESO DPR TYPE"] = "OBJECT,AO"
    h["HIERARCH ESO OBS ID"] = 1234
    h["HIERARCH ESO OBS PROG ID"] = "0103.C-0001(A)"
    for key, value in extra.items():
        h[key] = value
    return h


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One simulated DBI sequence with SPARTA files (one every 10 min, samples every 30 s)."""
    return simulate_irdis_night(
        tmp_path_factory.mktemp("night"), seed=11, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=True
    )


def test_write_read_round_trip_keeps_times_to_the_microsecond(tmp_path):
    mjd = 58600.125 + np.array([0.0, 30.000001, 60.5]) / DAY
    atm = {
        "mjd": mjd,
        "r0_m": np.array([0.1, 0.0, 0.12]),
        "wind_m_s": np.array([8.0, 9.0, 99.0]),
        "strehl": np.array([0.8, 0.7, 0.75]),
    }
    ir = {"mjd": mjd, "flux": np.array([1.0, 2.0, 3.0]), "flux_std": np.zeros(3)}
    path = write_sparta(tmp_path / "s.fits", _header(), atm, ir=ir)
    tel = read_sparta(path)
    np.testing.assert_allclose((tel.atm_mjd - mjd) * DAY, 0.0, atol=1e-6)
    assert tel.atm_valid.tolist() == [True, False, False]  # r0 = 0 and wind 99 m/s are discarded
    assert tel.ob_id == 1234 and tel.ra_deg == 200.0 and not tel.maintenance
    assert tel.dtts_flux.tolist() == [1.0, 2.0, 3.0] and tel.vis_mjd.size == 0
    with fits.open(path) as hdul:
        assert [h.name for h in hdul[1:]] == ["ATMPERFPARAMS", "IRLOOPPARAMS"]
        assert hdul["AtmPerfParams"].columns["R0"].unit == "m"
    meta, _ = read_file(path)
    assert (meta.file_class, meta.arm, meta.mode) == ("AO_TELEMETRY", "SPARTA", "AO")
    assert meta.extra["ao_samples"] == 1
    assert meta.seeing == pytest.approx(0.5e-6 / 0.1 * 206264.806, rel=1e-4)


def test_bad_files_are_refused_with_the_file_name(tmp_path):
    text = tmp_path / "notfits.fits"
    text.write_text("hello")
    with pytest.raises(SpartaError, match="notfits.fits"):
        read_sparta(text)
    irdis = tmp_path / "irdis.fits"
    fits.PrimaryHDU(header=_header(**{"HIERARCH ESO DPR TYPE": "OBJECT"})).writeto(irdis)
    with pytest.raises(SpartaError, match="irdis.fits: not a SPARTA file"):
        read_sparta(irdis)
    broken = tmp_path / "broken.fits"
    table = fits.BinTableHDU.from_columns(
        [fits.Column("Sec", "K", array=[1]), fits.Column("R0", "E", array=[0.1])], name="AtmPerfParams"
    )
    fits.HDUList([fits.PrimaryHDU(header=_header()), table]).writeto(broken)
    with pytest.raises(SpartaError, match="broken.fits: AtmPerfParams lacks column.*WindSpeed"):
        read_sparta(broken)


def test_simulated_sparta_files_are_classified_and_carry_the_ob(night):
    telemetry = night.ao_telemetry
    assert len(telemetry.files) >= 3
    obs_id = {f.path.name: f for f in night.files}
    science_ob = fits.getheader(night.select("OBJECT")[0].path)["HIERARCH ESO OBS ID"]
    for path in telemetry.files:
        assert path.name not in obs_id  # never the name of an IRDIS file
        meta, _ = read_file(path)
        assert (meta.file_class, meta.arm, meta.ob_id) == ("AO_TELEMETRY", "SPARTA", science_ob)
        assert meta.night.isoformat() == "2018-11-30"
        tel = read_sparta(path)
        assert meta.extra["ao_samples"] == int(tel.atm_valid.sum())


def test_frame_conditions_recover_the_true_conditions(night):
    telemetry = night.ao_telemetry
    tels = [read_sparta(p) for p in telemetry.files]
    objects = night.select("OBJECT")
    mjd = np.concatenate([f.mjd_mid for f in objects])
    table = frame_conditions(tels, mjd, night.target.ra_deg, night.target.dec_deg)
    truth = telemetry.truth_at(mjd)
    assert not table["NO_TELEMETRY"].any()
    assert table.meta["AO_DT"] == pytest.approx(30.0, abs=1e-3)
    written = telemetry.written_mask()
    assert table.meta["AO_NREJ"] == int((telemetry.invalid & written).sum()) > 0
    # measurement noise is 2-5 % per sample; the conditions drift over ~25 min
    np.testing.assert_allclose(table["STREHL"], truth["strehl"], rtol=0.05)
    np.testing.assert_allclose(table["SEEING"], truth["seeing"], rtol=0.07)
    np.testing.assert_allclose(table["WIND"], truth["wind_m_s"], rtol=0.12)
    np.testing.assert_allclose(table["TAU0"], truth["tau0_s"], rtol=0.15)
    np.testing.assert_allclose(table["DTTS_FLUX"], telemetry.spec.dtts_flux_adu * truth["strehl"], rtol=0.04)
    # zenith values use the airmass of the frame, which is the header's TEL AIRM START
    header = fits.getheader(objects[0].path)
    assert table["AIRMASS"][0] == pytest.approx(header["HIERARCH ESO TEL AIRM START"], abs=0.005)
    np.testing.assert_allclose(table["SEEING_ZENITH"], table["SEEING"] * table["AIRMASS"] ** -0.6)
    np.testing.assert_allclose(table["TAU0_ZENITH"], table["TAU0"] * table["AIRMASS"] ** 0.6)
    assert table["SEEING"].unit == "arcsec" and table["TAU0"].unit == "s"


def test_missing_telemetry_is_flagged_not_invented(night):
    telemetry = night.ao_telemetry
    files = telemetry.files
    dropped = read_sparta(files[1])
    kept = [read_sparta(p) for k, p in enumerate(files) if k != 1]
    inside = np.linspace(dropped.atm_mjd[3], dropped.atm_mjd[-4], 5)  # > 90 s from any kept sample
    table = frame_conditions(kept, inside)
    assert table["NO_TELEMETRY"].all()
    assert np.isnan(table["STREHL"]).all() and np.isnan(table["SEEING"]).all()
    assert (table["AO_NEAREST"] > 90.0).all()
    # far before the night: nothing either; no files at all: every frame flagged
    assert frame_conditions(kept, np.array([kept[0].atm_mjd[0] - 0.1]))["NO_TELEMETRY"][0]
    assert frame_conditions([], inside)["NO_TELEMETRY"].all()


def test_speckle_brightness_follows_the_simulated_strehl(night):
    telemetry = night.ao_telemetry
    t_ref = Time(min(f.date_obs for f in night.files if f.dpr_catg == "SCIENCE"), scale="utc")
    from hcdc.instruments.sphere.irdis import simulate_ao
    from hcdc.science.simulation.speckles import make_evolving_speckles

    base = make_evolving_speckles(np.random.default_rng(4))
    conditioned = simulate_ao.condition_speckles(base, telemetry, t_ref)
    sr = telemetry.truth["strehl"]
    k_bad, k_good = int(np.argmin(sr)), int(np.argmax(sr))
    for k in (k_bad, k_good):
        t_s = (telemetry.mjd[k] - t_ref.mjd) * DAY
        ratio = (
            speckle_intensity(conditioned, (64, 64), (32.0, 32.0), 3.3, t_s).sum()
            / speckle_intensity(base, (64, 64), (32.0, 32.0), 3.3, t_s).sum()
        )
        assert ratio == pytest.approx((1 - sr[k]) / (1 - telemetry.reference_strehl), rel=1e-6)
    off = simulate_ao.condition_speckles(
        base,
        simulate_ao.SimulatedTelemetry(
            AoTelemetrySpec(modulate_speckles=False),
            telemetry.mjd,
            telemetry.truth,
            telemetry.measured,
            telemetry.invalid,
            telemetry.dtts_flux,
            telemetry.vis_flux,
            telemetry.reference_strehl,
            [],
        ),
        t_ref,
    )
    assert off is base


def test_simulation_without_telemetry_is_unchanged(night, tmp_path):
    """Asking for telemetry draws from its own generator: the science frames of the default
    simulation (no telemetry, the reference of every other test) keep their bytes."""
    spec = AoTelemetrySpec(modulate_speckles=False)
    with_ao = simulate_irdis_night(
        tmp_path / "a", seed=11, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=spec
    )
    plain = simulate_irdis_night(tmp_path / "b", seed=11, sequences=DEFAULT_SEQUENCES[:1])
    assert plain.ao_telemetry is None and not any("SPARTA" in str(f.path) for f in plain.files)
    for a, b in zip(with_ao.files, plain.files, strict=True):
        assert a.path.name == b.path.name
        assert np.array_equal(fits.getdata(a.path), fits.getdata(b.path))


def test_airmass_of_the_zenith_correction_matches_real_headers(shared_data: Path):
    """The airmass used by the zenith corrections (frame_conditions' AIRMASS, from J2000 RA/Dec
    and the time) against TEL AIRM START/END of the six real IFS science headers (0.001 steps)."""
    from hcdc.instruments.eso_headers import read_header_text

    paths = sorted((shared_data / "sphere_headers").glob("SPHER.2020-03-08T07*.hdr.txt"))
    assert len(paths) == 6
    for path in paths:
        h = read_header_text(path)
        times = Time([h["DATE-OBS"], h["HIERARCH ESO DET FRAM UTC"]], scale="utc")
        table = frame_conditions([], times.mjd, h["RA"], h["DEC"])
        assert table["AIRMASS"][0] == pytest.approx(h["HIERARCH ESO TEL AIRM START"], abs=0.0015), path.name
        assert table["AIRMASS"][1] == pytest.approx(h["HIERARCH ESO TEL AIRM END"], abs=0.0015), path.name
        assert table["NO_TELEMETRY"].all()


def test_simulated_dimm_seeing_agrees_with_the_zenith_sparta_seeing(night):
    """The science headers' ESO ambient seeing (DIMM, zenith) comes from the same simulated
    atmosphere: SPARTA's zenith seeing at DATE-OBS agrees within the estimates' noise."""
    tels = [read_sparta(p) for p in night.ao_telemetry.files]
    for f in night.select("OBJECT"):
        h = fits.getheader(f.path)
        start_end = Time([h["DATE-OBS"], h["HIERARCH ESO DET FRAM UTC"]], scale="utc").mjd
        table = frame_conditions(tels, start_end, h["RA"], h["DEC"])
        assert h["HIERARCH ESO TEL AMBI FWHM START"] == pytest.approx(table["SEEING_ZENITH"][0], rel=0.07)
        assert h["HIERARCH ESO TEL AMBI FWHM END"] == pytest.approx(table["SEEING_ZENITH"][1], rel=0.07)
        # TEL AMBI TAU0: the file's average (start and end)
        assert h["HIERARCH ESO TEL AMBI TAU0"] == pytest.approx(np.mean(table["TAU0_ZENITH"]), rel=0.12)
