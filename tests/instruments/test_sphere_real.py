"""SPHERE identification, classification and extraction on the 8 real IFS headers."""

from __future__ import annotations

import datetime as dt

import pytest
from astropy.io import fits

from hcdc.instruments.registry import read_file

from .conftest import REAL_FILES, SCIENCE_FILES, WAVE_YJ, WAVE_YJH, eso

pytestmark = pytest.mark.shared_data

# Known answers from sphere_headers/README.md: (DPR CATG, DPR TYPE, file_class, mode, DIT, NDIT)
EXPECTED = {
    "SPHER.2020-03-08T07_05_15.511": ("SCIENCE", "OBJECT,CENTER", "CENTER", "IFS-YJ", 64.0, 6),
    "SPHER.2020-03-08T07_12_03.720": ("SCIENCE", "OBJECT", "SCIENCE", "IFS-YJ", 64.0, 8),
    "SPHER.2020-03-08T07_20_53.733": ("SCIENCE", "OBJECT", "SCIENCE", "IFS-YJ", 64.0, 8),
    "SPHER.2020-03-08T07_29_43.729": ("SCIENCE", "OBJECT", "SCIENCE", "IFS-YJ", 64.0, 8),
    "SPHER.2020-03-08T07_38_33.715": ("SCIENCE", "OBJECT", "SCIENCE", "IFS-YJ", 64.0, 8),
    "SPHER.2020-03-08T07_48_21.618": ("SCIENCE", "OBJECT,FLUX", "FLUX", "IFS-YJ", 12.0, 10),
    "SPHER.2020-03-08T16_53_05.173": ("CALIB", "WAVE,LAMP", "WAVE", "IFS-YJ", 1.650726, 10),
    "SPHER.2020-03-08T16_55_42.124": ("CALIB", "WAVE,LAMP", "WAVE", "IFS-YJH", 1.650726, 10),
}


@pytest.mark.parametrize("name", REAL_FILES)
def test_identification_and_classification(real_fits, name):
    meta, header = read_file(real_fits[name])
    catg, dpr_type, file_class, mode, dit, ndit = EXPECTED[name]
    assert (meta.instrument, meta.arm) == ("SPHERE", "IFS")
    assert (meta.category, meta.type, meta.technique) == (catg, dpr_type, "IFU")
    assert meta.file_class == file_class
    assert meta.mode == mode
    assert meta.dit == pytest.approx(dit, abs=1e-9)
    assert meta.ndit == ndit
    assert isinstance(header, fits.Header) and header["INSTRUME"] == "SPHERE"


def _mean(header, start, end):
    return (header[eso(start)] + header[eso(end)]) / 2


@pytest.mark.parametrize("name", REAL_FILES)
def test_values_match_the_header(real_fits, real_headers, name):
    """Every extracted value equals the value astropy reads from the same header."""
    meta, _ = read_file(real_fits[name])
    h = real_headers[name]
    assert meta.mjd_obs == pytest.approx(h["MJD-OBS"], abs=1e-9)
    assert meta.date_obs == dt.datetime.fromisoformat(h["DATE-OBS"])
    assert meta.ndit == h[eso("DET NDIT")]
    assert meta.dit == h[eso("DET SEQ1 DIT")]
    assert meta.filter == h[eso("INS2 COMB IFS")]  # the IFS spectral setup
    assert meta.extra["iflt"] == h[eso("INS COMB IFLT")]  # IRDIS filter, kept in extra
    assert meta.coronagraph == h[eso("INS COMB ICOR")]
    assert meta.nd_filter == h[eso("INS4 FILT2 NAME")]
    assert meta.readout_mode == h[eso("DET READ CURNAME")] == "Nondest"
    assert meta.prog_id == h[eso("OBS PROG ID")]
    assert meta.ob_id == h[eso("OBS ID")]
    assert meta.ob_name == h[eso("OBS NAME")]
    assert meta.tpl_id == h[eso("TPL ID")]
    assert meta.tpl_start == h[eso("TPL START")]
    assert (meta.tpl_expno, meta.tpl_nexp) == (h[eso("TPL EXPNO")], h[eso("TPL NEXP")])
    assert meta.extra["arcfile"] == h["ARCFILE"]
    assert meta.extra["drot2_begin"] == h[eso("INS4 DROT2 BEGIN")]


@pytest.mark.parametrize("name", SCIENCE_FILES)
def test_science_pointing_target_and_ambient(real_fits, real_headers, name):
    meta, _ = read_file(real_fits[name])
    h = real_headers[name]
    assert meta.target == "A124420" == h[eso("OBS TARG NAME")]
    assert meta.ra == pytest.approx(191.084536) and meta.dec == pytest.approx(-8.67217)
    assert (meta.prog_id, meta.ob_id) == ("0104.C-0007(B)", 2485392)
    assert meta.seeing == pytest.approx(_mean(h, "TEL AMBI FWHM START", "TEL AMBI FWHM END"))
    assert meta.airmass == pytest.approx(_mean(h, "TEL AIRM START", "TEL AIRM END"))
    assert meta.tau0 == h[eso("TEL AMBI TAU0")]
    assert meta.wind_speed == h[eso("TEL AMBI WINDSP")]
    assert meta.extra["parang_start"] == h[eso("TEL PARANG START")]
    assert meta.extra["waffle_orient"] == "x"
    assert meta.extra["derotator_mode"] == "ELEV"
    # IFS-YJ extraction range (charis-dep, sphere.md a.4)
    assert (meta.wavelength_min, meta.wavelength_max) == (0.94, 1.37)


def test_first_file_exact_values(real_fits):
    """Literal values of SPHER.2020-03-08T07:05:15.511 (sphere_headers/eso_archive_hdr_summary.csv)."""
    meta, _ = read_file(real_fits["SPHER.2020-03-08T07_05_15.511"])
    assert meta.date_obs == dt.datetime(2020, 3, 8, 7, 5, 15, 511000)
    assert meta.mjd_obs == 58916.29531841
    assert meta.coronagraph == "N_ALC_YJH_S"
    assert meta.nd_filter == "OPEN"
    assert meta.tau0 == 0.0035
    assert meta.seeing == pytest.approx((1.18 + 1.51) / 2)
    assert meta.extra["obstype_list"] == "C O F"
    assert meta.extra["pixscale_mas"] == 7.46


def test_night_convention(real_fits):
    """Night = date of (UTC - 12 h): the 07:05 UT science is night 2020-03-07, the 16:53 UT
    daytime wave calibration (13:53 local) already belongs to night 2020-03-08."""
    science, _ = read_file(real_fits[SCIENCE_FILES[0]])
    wave, _ = read_file(real_fits[WAVE_YJ])
    assert science.night == dt.date(2020, 3, 7)
    assert wave.night == dt.date(2020, 3, 8)


def test_calibration_has_no_target_and_obs_h_means_yjh(real_fits):
    yj, _ = read_file(real_fits[WAVE_YJ])
    yjh, _ = read_file(real_fits[WAVE_YJH])
    assert yj.target is None and yj.extra["object"] == "WAVE,LAMP"
    assert (yj.filter, yj.mode) == ("OBS_YJ", "IFS-YJ")
    assert (yjh.filter, yjh.mode, yjh.extra["ifs_mode"]) == ("OBS_H", "IFS-YJH", "IFS-H")
    assert (yjh.wavelength_min, yjh.wavelength_max) == (0.92, 1.70)
    assert yj.prog_id == "60.A-9255(A)"


def test_gzip_file_gives_the_same_metadata(real_fits, tmp_path):
    import gzip
    import shutil

    src = real_fits[SCIENCE_FILES[1]]
    gz = tmp_path / "x.fits.gz"
    with open(src, "rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    assert read_file(gz)[0] == read_file(src)[0]
