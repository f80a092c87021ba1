"""IRDIS, ZIMPOL, SPARTA, NACO and IFS-calibration headers derived from the real IFS headers.

Each derived header is a copy of a real SPHERE header with the keywords that distinguish the
arm or file type replaced by values documented in ../shared/reference/sphere.md (section and
source given at each edit). Everything not edited (OB, template, telescope, ambient) stays
real.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.base import MetadataError
from hcdc.instruments.registry import read_file

from .conftest import SCIENCE_FILES, WAVE_YJ, edited, eso, write_fits

pytestmark = pytest.mark.shared_data

OBJECT_FILE = SCIENCE_FILES[1]

# sphere.md section 2: IRDIS-DBI partial header (2014, VY CMa) quoted in public code.
IRDIS_DBI = {
    "SEQ ARM": "IRDIS",
    "DET ID": "IRDIS",
    "DET NAME": "IRDIS",
    "DPR TECH": "IMAGE,DUAL,CORONOGRAPHY",
    "INS1 MODE": "DBI",
    "INS4 MODE": "IRDIS_DBI",
    "INS COMB IFLT": "DB_J23",
    "INS1 FILT ID": "FILT_BBF_J",
    "INS4 COMB IND": "ND_N_1.0",
    "INS4 FILT2 NAME": "ND_1.0",
    "TPL ID": "SPHERE_irdis_dbi_obs",
    "DET SEQ1 DIT": 0.837464,
}


def test_irdis_dbi(real_headers, make_fits):
    meta, _ = read_file(make_fits("irdis", edited(real_headers[OBJECT_FILE], IRDIS_DBI)))
    assert (meta.instrument, meta.arm, meta.file_class) == ("SPHERE", "IRDIS", "SCIENCE")
    assert meta.mode == "DBI"
    assert meta.filter == "DB_J23"  # IRDIS filter = INS COMB IFLT
    assert meta.nd_filter == "ND_1.0"
    assert meta.dit == pytest.approx(0.837464)
    # DB_J23: 1190 nm (42 nm wide) and 1273 nm (46 nm wide) -> 1.169 .. 1.296 µm
    assert (meta.wavelength_min, meta.wavelength_max) == pytest.approx((1.169, 1.296))


@pytest.mark.parametrize(
    ("changes", "mode"),
    [
        ({"INS1 MODE": "NIROBS", "INS COMB IFLT": "BB_H"}, "CI"),  # a.3: BB_* with CLEAR DFW = CI
        ({"INS1 MODE": "DPI", "INS COMB IFLT": "DP_0_BB_J", "DPR TECH": "POLARIMETRY"}, "DPI"),
        ({"INS1 MODE": "LSS", "INS COMB IFLT": "S_LR", "DPR TECH": "SPECTRUM"}, "LSS"),
        ({"INS1 MODE": "EXT", "INS COMB IFLT": "DB_K12"}, "DBI"),  # IRDIFS_EXT: IRDIS in K12
    ],
)
def test_irdis_modes(real_headers, make_fits, changes, mode):
    header = edited(real_headers[OBJECT_FILE], {**IRDIS_DBI, **changes})
    meta, _ = read_file(make_fits("irdis_mode", header))
    assert meta.mode == mode


def test_wave_lamp_spelling_depends_on_the_arm(real_headers, make_fits):
    """Gotcha: IFS wave calibration is WAVE,LAMP, IRDIS long-slit is LAMP,WAVE."""
    irdis_lss = {**IRDIS_DBI, "DPR CATG": "CALIB", "INS1 MODE": "LSS", "INS COMB IFLT": "S_MR"}
    irdis_wave, _ = read_file(
        make_fits("a", edited(real_headers[WAVE_YJ], {**irdis_lss, "DPR TYPE": "LAMP,WAVE"}))
    )
    assert (irdis_wave.arm, irdis_wave.file_class, irdis_wave.mode) == ("IRDIS", "WAVE", "LSS")
    wrong, _ = read_file(
        make_fits("b", edited(real_headers[WAVE_YJ], {**irdis_lss, "DPR TYPE": "WAVE,LAMP"}))
    )
    assert wrong.file_class == "CALIB_OTHER"  # WAVE,LAMP is not an IRDIS type
    ifs_wrong, _ = read_file(make_fits("c", edited(real_headers[WAVE_YJ], {"DPR TYPE": "LAMP,WAVE"})))
    assert ifs_wrong.file_class == "CALIB_OTHER"
    ifs_wave, _ = read_file(make_fits("d", real_headers[WAVE_YJ]))
    assert ifs_wave.file_class == "WAVE"


@pytest.mark.parametrize(
    ("changes", "file_class", "lamp"),
    [
        # a.4: detector flats CAL_<lamp>_<mode>, DPR TECH=IMAGE (vlt-sphere)
        (
            {"DPR TYPE": "FLAT,LAMP", "DPR TECH": "IMAGE", "INS2 COMB IFS": "CAL_BB_2_YJ"},
            "DETECTOR_FLAT",
            "BB",
        ),
        (
            {"DPR TYPE": "FLAT,LAMP", "DPR TECH": "IMAGE", "INS2 COMB IFS": "CAL_NB4_2_YJH"},
            "DETECTOR_FLAT",
            "NB4",
        ),
        # IFU flat: FLAT,LAMP with DPR TECH=IFU and OBS_YJ
        ({"DPR TYPE": "FLAT,LAMP", "DPR TECH": "IFU", "INS2 COMB IFS": "OBS_YJ"}, "IFU_FLAT", None),
        ({"DPR TYPE": "SPECPOS,LAMP", "INS2 COMB IFS": "OBS_YJ"}, "SPECPOS", None),
        ({"DPR TYPE": "DARK,BACKGROUND", "INS COMB ICOR": "N_NS_CLEAR"}, "BACKGROUND", None),
        ({"DPR TYPE": "DARK", "INS COMB ICOR": "N_NS_OPAQUE"}, "DARK", None),
        ({"DPR TYPE": "STD"}, "STD", None),
        ({"DPR TYPE": "FOO,BAR"}, "CALIB_OTHER", None),
        ({"DPR CATG": "ACQUISITION", "DPR TYPE": "OBJECT"}, "ACQUISITION", None),
    ],
)
def test_ifs_calibration_classes(real_headers, make_fits, changes, file_class, lamp):
    meta, _ = read_file(make_fits("ifs_cal", edited(real_headers[WAVE_YJ], changes)))
    assert meta.file_class == file_class
    assert meta.extra.get("ifs_flat_lamp") == lamp
    if lamp == "NB4":
        assert meta.mode == "IFS-YJH"


def test_zimpol(real_headers, make_fits):
    """a.5 / form vocabularies: ZIMPOL arm, ZPL detector, camera filters, polarimetric readout."""
    header = edited(
        real_headers[OBJECT_FILE],
        {
            "SEQ ARM": "ZIMPOL",
            "DET ID": "ZPL",
            "DPR TECH": "POLARIMETRY",
            "DET READ CURNAME": "FastPolarimetry",
            "DET DIT1": 2.0,
            "INS3 OPTI5 NAME": "N_R",
            "INS3 OPTI6 NAME": "N_I",
            "INS COMB VCOR": "V_CLC_MT_WF",
        },
        remove=("DET SEQ1 DIT",),
    )
    meta, _ = read_file(make_fits("zimpol", header))
    assert (meta.arm, meta.mode, meta.file_class) == ("ZIMPOL", "ZIMPOL-POL", "SCIENCE")
    assert (meta.filter, meta.coronagraph, meta.readout_mode, meta.dit) == (
        "N_R/N_I",
        "V_CLC_MT_WF",
        "FastPolarimetry",
        2.0,
    )


def test_sparta_ao_telemetry(real_headers, tmp_path):
    """Section 2: SPARTA files have DPR TYPE='OBJECT,AO', no SEQ ARM, no image, and binary
    tables; AtmPerfParams rows outside 0.05 < SR <= 0.98, 0 < r0 <= 0.9 m, 0 < v <= 50 m/s are
    ignored, seeing = 500 nm / r0 and tau0 = 0.314 r0 / v (vlt-sphere / jmilou sparta)."""
    header = edited(
        real_headers[OBJECT_FILE],
        {"DPR TYPE": "OBJECT,AO", "ORIGFILE": "SPHERE_GEN_SPARTA068_0001.fits"},
        remove=(
            "SEQ ARM",
            "DET ID",
            "DET NAME",
            "DET SEQ1 DIT",
            "TEL AMBI FWHM START",
            "TEL AMBI FWHM END",
            "TEL AMBI TAU0",
            "TEL AMBI WINDSP",
        ),
    )
    for key in ("NAXIS1", "NAXIS2", "NAXIS3", "BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True)
    t0 = 1583651115.0  # 2020-03-08T07:05:15 UTC
    rows = {  # two valid rows, then SR > 0.98, r0 > 0.9 m, v > 50 m/s
        "Sec": [t0, t0 + 60, t0 + 120, t0 + 180, t0 + 240],
        "USec": [0, 500000, 0, 0, 0],
        "R0": [0.10, 0.20, 0.15, 1.2, 0.12],
        "WindSpeed": [10.0, 5.0, 8.0, 8.0, 60.0],
        "StrehlRatio": [0.5, 0.7, 0.99, 0.6, 0.6],
    }
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=n, format="D", array=np.array(v, dtype=float)) for n, v in rows.items()],
        name="AtmPerfParams",
    )
    path = tmp_path / "sparta.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path, output_verify="silentfix")
    meta, _ = read_file(path)
    assert (meta.instrument, meta.arm) == ("SPHERE", "SPARTA")
    assert (meta.file_class, meta.mode) == ("AO_TELEMETRY", "AO")
    assert meta.ob_id == 2485392 and meta.dit is None
    arcsec = 180 / np.pi * 3600
    assert meta.extra["ao_samples"] == 2
    assert meta.extra["ao_r0_m"] == pytest.approx(0.15)
    assert meta.seeing == pytest.approx((500e-9 / 0.1 + 500e-9 / 0.2) / 2 * arcsec, abs=1e-4)
    assert meta.tau0 == pytest.approx((0.314 * 0.1 / 10 + 0.314 * 0.2 / 5) / 2, abs=1e-6)
    assert meta.wind_speed == 7.5 and meta.extra["ao_strehl"] == pytest.approx(0.6)
    assert meta.mjd_end == pytest.approx(40587 + (t0 + 60.5) / 86400, abs=1e-9)


def test_derotator_begin_renamed_start(real_headers, make_fits):
    """Gotcha: INS4 DROT2 BEGIN became INS4 DROT2 START in June 2021; both are read."""
    value = real_headers[OBJECT_FILE][eso("INS4 DROT2 BEGIN")]
    header = edited(real_headers[OBJECT_FILE], {"INS4 DROT2 START": value}, remove=("INS4 DROT2 BEGIN",))
    meta, _ = read_file(make_fits("drot", header))
    assert meta.extra["drot2_begin"] == value == 214.5106


# --- NACO ---------------------------------------------------------------------------------
# Keywords and values from hcdc.instruments.naco's docstring (NACO reduction code): INSTRUME,
# INS OPTI1 ID='AGPM', INS OPTI6 NAME/TYPE, INS OPTI7 NAME 'L27', DET NCORRS/MODE NAME.
NACO = {
    "INSTRUME": "NAOS+CONICA",
    "TELESCOP": "ESO-VLT-U4",
    "DPR TECH": "IMAGE",
    "DET DIT": 0.2,
    "DET NDIT": 100,
    "INS OPTI1 ID": "AGPM",
    "INS OPTI1 NAME": "AGPM",
    "INS OPTI3 NAME": "Full_Uszd",
    "INS OPTI4 NAME": "empty",
    "INS OPTI5 NAME": "empty",
    "INS OPTI6 NAME": "L_prime",
    "INS OPTI6 TYPE": "FILTER",
    "INS OPTI7 NAME": "L27",
    "INS CWLEN": 3.8,
    "INS PIXSCALE": 0.02719,
    "DET NCORRS NAME": "Uncorr",
    "DET MODE NAME": "HighWellDepth",
}


def naco_header(real_headers, **changes):
    drop = ("SEQ ARM", "DET ID", "DET NAME", "DET SEQ1 DIT", "INS2 COMB IFS", "INS COMB IFLT")
    return edited(real_headers[OBJECT_FILE], {**NACO, **changes}, remove=drop)


def test_naco_agpm_science(real_headers, make_fits):
    meta, _ = read_file(make_fits("naco", naco_header(real_headers)))
    assert (meta.instrument, meta.arm, meta.file_class, meta.mode) == ("NACO", "CONICA", "SCIENCE", "AGPM")
    assert (meta.dit, meta.ndit, meta.filter, meta.coronagraph) == (0.2, 100, "L_prime", "AGPM")
    assert meta.readout_mode == "Uncorr/HighWellDepth"
    assert meta.nd_filter is None
    assert meta.extra["camera"] == "L27"
    assert meta.wavelength_min == meta.wavelength_max == 3.8
    assert meta.ob_id == 2485392  # common ESO keywords are still read


@pytest.mark.parametrize(
    ("changes", "file_class", "mode"),
    [
        ({"DPR TYPE": "SKY"}, "SKY", "AGPM"),
        (
            {"DPR CATG": "CALIB", "DPR TYPE": "FLAT,SKY", "INS OPTI1 ID": "", "INS OPTI1 NAME": "empty"},
            "FLAT",
            "IMG",
        ),
        ({"DPR CATG": "CALIB", "DPR TYPE": "DARK"}, "DARK", "AGPM"),
        (
            {"DPR TYPE": "OBJECT", "DPR TECH": "IMAGE,SAM", "INS OPTI1 ID": "", "INS OPTI1 NAME": "empty"},
            "SCIENCE",
            "SAM",
        ),
        ({"INS OPTI3 NAME": "ND_Long"}, "SCIENCE", "AGPM"),
    ],
)
def test_naco_classes(real_headers, make_fits, changes, file_class, mode):
    meta, _ = read_file(make_fits("naco", naco_header(real_headers, **changes)))
    assert (meta.file_class, meta.mode) == (file_class, mode)
    if changes.get("INS OPTI3 NAME") == "ND_Long":
        assert meta.nd_filter == "ND_Long"


def test_naco_without_dit_is_rejected(real_headers, make_fits):
    header = naco_header(real_headers)
    del header[eso("DET DIT")]
    del header["EXPTIME"]
    with pytest.raises(MetadataError, match="DET DIT"):
        read_file(make_fits("naco", header))


# --- missing essential keywords --------------------------------------------------------------


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (("DPR TYPE",), "ESO DPR TYPE"),
        (("DPR CATG",), "ESO DPR CATG"),
        (("DET SEQ1 DIT",), "ESO DET SEQ1 DIT"),
        (("DATE-OBS", "MJD-OBS"), "DATE-OBS"),
        (("SEQ ARM", "DET ID", "DET NAME"), "arm"),
    ],
)
def test_missing_essential_keyword(real_headers, make_fits, remove, message):
    header = edited(real_headers[OBJECT_FILE], {}, remove=remove)
    with pytest.raises(MetadataError, match=message):
        read_file(make_fits("missing", header))


def test_invalid_date_is_rejected(real_headers, make_fits):
    header = edited(real_headers[OBJECT_FILE], {"DATE-OBS": "yesterday"}, remove=("MJD-OBS",))
    with pytest.raises(MetadataError, match="DATE-OBS"):
        read_file(make_fits("baddate", header))


def test_sphere_fits_helper_roundtrip(real_headers, tmp_path):
    """The helper writes the real header unchanged apart from the data-shape keywords."""
    path = write_fits(tmp_path / "x.fits", real_headers[OBJECT_FILE])
    written = fits.getheader(path)
    assert written[eso("DPR TYPE")] == "OBJECT"
    assert written["NAXIS3"] == 2  # the small cube, not the real 8 DITs
