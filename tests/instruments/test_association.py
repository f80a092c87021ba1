"""Datasets, sequence roles and calibration association on a realistic night built from the
real SPHERE headers.

The night: the 6 real IFS-YJ science files of OB 2485392 (07:05-07:55 UT on 2020-03-08,
night 2020-03-07: CENTER, 4 x OBJECT at DIT 64 s, FLUX at DIT 12 s), the two real WAVE,LAMP
files (YJ and YJH, 16:53-16:55 UT), and calibrations derived from the real WAVE,LAMP header
(a real IFS CALIB header) or a real science header (for SKY) by changing DPR TYPE/TECH, DIT,
INS2 COMB IFS, the ND and the time. Some calibrations have the right setup, others a wrong
DIT, ND, mode or arm, or were taken on another night.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hcdc.instruments.association import (
    associate,
    dataset_key,
    is_calibration,
    sequence_role,
    values_match,
)
from hcdc.instruments.registry import read_file

from .conftest import SCIENCE_FILES, WAVE_YJ, WAVE_YJH, edited, set_time

pytestmark = pytest.mark.shared_data

DAY = dt.datetime(2020, 3, 8)


def at(hour: float, day_offset: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(days=day_offset, hours=hour)


# id -> (description, base header, changes, time)
IFS_CALIBRATIONS = {
    # backgrounds for DIT 64 s (science ND is OPEN)
    10: ("SKY with the wrong ND", "science", {"DPR TYPE": "SKY", "INS4 FILT2 NAME": "ND_2.0"}, at(7.97)),
    11: ("DARK,BACKGROUND 64 s", "calib", {"DPR TYPE": "DARK,BACKGROUND", "DET SEQ1 DIT": 64.0}, at(10.0)),
    12: ("DARK 64 s", "calib", {"DPR TYPE": "DARK", "DET SEQ1 DIT": 64.0}, at(9.5)),
    13: ("DARK with the wrong DIT (60 s)", "calib", {"DPR TYPE": "DARK", "DET SEQ1 DIT": 60.0}, at(7.93)),
    17: (
        "DARK,BACKGROUND 64 s, 4 nights later",
        "calib",
        {"DPR TYPE": "DARK,BACKGROUND", "DET SEQ1 DIT": 64.0},
        at(10, 4),
    ),
    # backgrounds for DIT 12 s
    14: ("DARK 12.004 s (within 0.01 s)", "calib", {"DPR TYPE": "DARK", "DET SEQ1 DIT": 12.004}, at(8.5)),
    15: (
        "DARK,BACKGROUND 12.5 s (wrong DIT)",
        "calib",
        {"DPR TYPE": "DARK,BACKGROUND", "DET SEQ1 DIT": 12.5},
        at(8.0),
    ),
    16: ("DARK 12 s, later", "calib", {"DPR TYPE": "DARK", "DET SEQ1 DIT": 12.0}, at(11.0)),
    # calibration dark 1.65 s
    20: ("DARK 1.650726 s", "calib", {"DPR TYPE": "DARK", "DET SEQ1 DIT": 1.650726}, at(16.67)),
    # detector flats (DPR TECH=IMAGE, CAL_<lamp>_<mode>)
    30: ("BB YJ flat 1.65 s", "flat", {"INS2 COMB IFS": "CAL_BB_2_YJ", "DET SEQ1 DIT": 1.650726}, at(15.0)),
    31: ("BB YJ flat 10 s", "flat", {"INS2 COMB IFS": "CAL_BB_2_YJ", "DET SEQ1 DIT": 10.0}, at(15.03)),
    32: (
        "BB YJ flat, 2 nights later",
        "flat",
        {"INS2 COMB IFS": "CAL_BB_2_YJ", "DET SEQ1 DIT": 1.650726},
        at(15, 2),
    ),
    33: (
        "BB YJH flat (wrong mode)",
        "flat",
        {"INS2 COMB IFS": "CAL_BB_2_YJH", "DET SEQ1 DIT": 1.650726},
        at(15.08),
    ),
    34: (
        "NB1 YJ flat 1.65 s",
        "flat",
        {"INS2 COMB IFS": "CAL_NB1_1_YJ", "DET SEQ1 DIT": 1.650726},
        at(15.17),
    ),
    35: (
        "NB1 YJ flat 1.65 s again",
        "flat",
        {"INS2 COMB IFS": "CAL_NB1_1_YJ", "DET SEQ1 DIT": 1.650726},
        at(15.18),
    ),
    36: (
        "NB2 YJ flat 1.65 s, 5 days later",
        "flat",
        {"INS2 COMB IFS": "CAL_NB2_1_YJ", "DET SEQ1 DIT": 1.650726},
        at(15, 5),
    ),
    37: (
        "NB2 YJ flat 10 s, 5 days later",
        "flat",
        {"INS2 COMB IFS": "CAL_NB2_1_YJ", "DET SEQ1 DIT": 10.0},
        at(15.05, 5),
    ),
    # spectra positions and IFU flats
    40: ("SPECPOS YJ", "calib", {"DPR TYPE": "SPECPOS,LAMP", "INS2 COMB IFS": "OBS_YJ"}, at(16.5)),
    41: (
        "SPECPOS YJH (wrong mode)",
        "calib",
        {"DPR TYPE": "SPECPOS,LAMP", "INS2 COMB IFS": "OBS_H"},
        at(16.52),
    ),
    52: ("WAVE YJ, 3 days later", "calib", {}, at(16.9, 3)),
    60: (
        "IFU flat YJ, 2 days later",
        "calib",
        {"DPR TYPE": "FLAT,LAMP", "INS2 COMB IFS": "OBS_YJ"},
        at(16.0, 2),
    ),
    61: (
        "IFU flat YJH (wrong mode)",
        "calib",
        {"DPR TYPE": "FLAT,LAMP", "INS2 COMB IFS": "OBS_H"},
        at(16.67),
    ),
    # another arm: an IRDIS dark with the science DIT, taken during the science
    70: (
        "IRDIS DARK 64 s",
        "calib",
        {"DPR TYPE": "DARK", "DET SEQ1 DIT": 64.0, "SEQ ARM": "IRDIS", "DET ID": "IRDIS"},
        at(7.5),
    ),
}
WRONG_SETUP = {10, 13, 15, 33, 41, 51, 61, 70}
REAL_WAVE_IDS = {WAVE_YJ: 50, WAVE_YJH: 51}


@pytest.fixture(scope="module")
def night(real_headers, real_fits, tmp_path_factory):
    """(science, candidates) as (id, FileMetadata) lists, read back from FITS files."""
    from .conftest import write_fits

    folder = tmp_path_factory.mktemp("night")
    science = [(i + 1, read_file(real_fits[name])[0]) for i, name in enumerate(SCIENCE_FILES)]
    candidates = [(REAL_WAVE_IDS[name], read_file(real_fits[name])[0]) for name in (WAVE_YJ, WAVE_YJH)]
    bases = {
        "calib": real_headers[WAVE_YJ],
        "science": real_headers[SCIENCE_FILES[1]],
        "flat": edited(real_headers[WAVE_YJ], {"DPR TYPE": "FLAT,LAMP", "DPR TECH": "IMAGE"}),
    }
    for cid, (_, base, changes, when) in IFS_CALIBRATIONS.items():
        header = set_time(edited(bases[base], changes), when)
        meta = read_file(write_fits(folder / f"cal{cid}.fits", header))[0]
        candidates.append((cid, meta))
    return science, candidates


def test_roles_datasets_and_calibration_flags(night):
    science, candidates = night
    roles = [sequence_role(m) for _, m in science]
    assert roles == ["OBJECT,CENTER", "OBJECT", "OBJECT", "OBJECT", "OBJECT", "OBJECT,FLUX"]
    keys = {dataset_key(m) for _, m in science}
    assert keys == {"SPHERE/IFS/2020-03-07/OB2485392/IFS-YJ"}
    assert not any(is_calibration(m) for _, m in science)
    by_id = dict(candidates)
    assert all(is_calibration(m) for m in by_id.values())
    assert all(dataset_key(m) is None for cid, m in candidates if cid != 10)
    # a SKY frame is both a calibration and a member of its OB's dataset
    assert sequence_role(by_id[10]) == "SKY" and dataset_key(by_id[10]) in keys


def test_ifs_association_on_the_night(night):
    science, candidates = night
    report = associate(science, candidates)
    chosen = {name: sorted(c.file_ids) for name, c in report.chosen.items()}
    assert chosen == {
        "background:dit=64": [11],  # no SKY with the science ND: DARK,BACKGROUND before DARK
        "background:dit=12": [14],  # DIT within 0.01 s, nearest
        "calib_dark": [20],
        "detector_flat:BB": [30, 31],  # two DITs, same night
        "detector_flat:NB2": [36, 37],  # only 5 days later: used, with a warning
        "specpos": [40],
        "wave": [50],  # the real YJ wave calibration, not the YJH one 2 minutes later
        "ifu_flat": [60],
    }
    used = {cid for ids in chosen.values() for cid in ids}
    assert not used & WRONG_SETUP
    assert report.missing == ["detector_flat:NB1", "detector_flat:NB3"]
    assert "distinct dit" in report.missing_reasons["detector_flat:NB1"]
    assert "no DETECTOR_FLAT" not in report.missing_reasons["detector_flat:NB1"]
    assert report.missing_reasons["detector_flat:NB3"].startswith("8 DETECTOR_FLAT file(s) but none with")
    assert (
        report.chosen["background:dit=64"].fallback
        and report.chosen["background:dit=64"].kind == "BACKGROUND"
    )
    assert report.chosen["wave"].delta_hours == pytest.approx(9.44, abs=0.01)
    warnings = "\n".join(report.warnings)
    assert "background:dit=64: fallback to BACKGROUND" in warnings
    assert "background:dit=12: fallback to DARK" in warnings
    assert "detector_flat:NB2: nearest DETECTOR_FLAT is 5.3" in warnings
    assert "ifu_flat: nearest IFU_FLAT is 2.3" in warnings
    assert not report.complete
    json.dumps(report.as_dict())  # JSON-friendly


def test_sky_beats_background_inside_the_window(night, real_headers, tmp_path):
    """With a SKY of the right setup (real science header as SKY, ND OPEN, DIT 64 s) the SKY is
    chosen although DARK,BACKGROUND frames are nearer; a SKY 3 days away is not preferred to a
    same-night DARK,BACKGROUND."""
    from .conftest import write_fits

    science, candidates = night
    sky_header = set_time(edited(real_headers[SCIENCE_FILES[1]], {"DPR TYPE": "SKY"}), at(12.0))
    sky = (90, read_file(write_fits(tmp_path / "sky.fits", sky_header))[0])
    near_bg = set_time(
        edited(real_headers[WAVE_YJ], {"DPR TYPE": "DARK,BACKGROUND", "DET SEQ1 DIT": 64.0}), at(8.0)
    )
    background = (91, read_file(write_fits(tmp_path / "bg.fits", near_bg))[0])
    report = associate(science, [*candidates, sky, background])
    assert report.chosen["background:dit=64"].file_ids == [90]
    assert not report.chosen["background:dit=64"].fallback

    old_sky_header = set_time(sky_header, at(12.0, 3))
    old_sky = (92, read_file(write_fits(tmp_path / "old_sky.fits", old_sky_header))[0])
    report = associate(science, [*candidates, old_sky, background])
    assert report.chosen["background:dit=64"].file_ids == [91]


def test_nothing_to_choose_from(night):
    science, _ = night
    report = associate(science, [])
    assert report.chosen == {}
    assert set(report.missing) == set(report.needs)
    assert len(report.needs) == 10  # 2 backgrounds, 4 YJ detector flats, specpos, wave, ifu flat, dark
    assert "no SKY/BACKGROUND/DARK file" in report.missing_reasons["background:dit=64"]


def test_empty_science():
    report = associate([], [])
    assert report.dataset is None and report.needs == [] and report.complete


def test_dit_tolerance():
    assert values_match("dit", 1.65, 1.650726)
    assert values_match("dit", 64.0, 64.009)
    assert not values_match("dit", 64.0, 64.02)
    assert values_match("filter", "DB_H23", "DB_H23") and not values_match("filter", "DB_H23", "DB_K12")


# --- IRDIS ----------------------------------------------------------------------------------

IRDIS = {"SEQ ARM": "IRDIS", "DET ID": "IRDIS", "DET NAME": "IRDIS", "INS1 MODE": "DBI"}


def test_irdis_dbi_association(real_headers, tmp_path):
    """IRDIS DBI science (DB_H23, 16 s) with flats of two filters, SKY and a dark."""
    from .conftest import write_fits

    def meta(name, base, changes, when):
        header = set_time(edited(base, {**IRDIS, **changes}), when)
        return read_file(write_fits(tmp_path / f"{name}.fits", header))[0]

    sci = real_headers[SCIENCE_FILES[1]]
    cal = real_headers[WAVE_YJ]
    setup = {"INS COMB IFLT": "DB_H23", "DET SEQ1 DIT": 16.0, "INS4 FILT2 NAME": "OPEN"}
    science = [(i, meta(f"s{i}", sci, setup, at(7 + i * 0.1))) for i in range(1, 4)]
    science.append((4, meta("c", sci, {**setup, "DPR TYPE": "OBJECT,CENTER"}, at(6.9))))
    candidates = []
    for k in range(5):  # 5 DB_H23 lamp flats in the morning, 5 DB_K12 flats nearer in time
        candidates.append(
            (
                100 + k,
                meta(
                    f"fh{k}", cal, {"DPR TYPE": "FLAT,LAMP", "DPR TECH": "IMAGE", **setup}, at(10 + k * 0.01)
                ),
            )
        )
        k12 = {**setup, "INS COMB IFLT": "DB_K12"}
        candidates.append(
            (
                200 + k,
                meta(f"fk{k}", cal, {"DPR TYPE": "FLAT,LAMP", "DPR TECH": "IMAGE", **k12}, at(8 + k * 0.01)),
            )
        )
    candidates.append((300, meta("sky", sci, {**setup, "DPR TYPE": "SKY"}, at(7.6))))
    candidates.append(
        (301, meta("skyk", sci, {**setup, "DPR TYPE": "SKY", "INS COMB IFLT": "DB_K12"}, at(7.3)))
    )
    candidates.append((302, meta("dark", cal, {**setup, "DPR TYPE": "DARK"}, at(7.2))))
    report = associate(science, candidates)
    assert report.dataset == "SPHERE/IRDIS/2020-03-07/OB2485392/DBI/DB_H23"
    assert sorted(report.chosen["flat"].file_ids) == [100, 101, 102, 103, 104]
    assert report.chosen["background"].file_ids == [300]
    assert report.missing == []
    assert report.optional_missing == ["distortion"]
    assert report.warnings == []
    assert report.complete


# --- NACO ------------------------------------------------------------------------------------

NACO = {
    "INSTRUME": "NAOS+CONICA",
    "DET DIT": 0.2,
    "INS OPTI1 ID": "AGPM",
    "INS OPTI6 NAME": "L_prime",
    "INS OPTI7 NAME": "L27",
    "DET NCORRS NAME": "Uncorr",
    "DET MODE NAME": "HighWellDepth",
}


def test_naco_association(real_headers, tmp_path):
    from .conftest import write_fits

    def meta(name, changes, when):
        drop = ("SEQ ARM", "DET ID", "DET NAME", "DET SEQ1 DIT")
        header = set_time(edited(real_headers[SCIENCE_FILES[1]], {**NACO, **changes}, remove=drop), when)
        return read_file(write_fits(tmp_path / f"{name}.fits", header))[0]

    science = [(i, meta(f"s{i}", {}, at(6 + 0.2 * i))) for i in range(3)]
    candidates = [
        (10, meta("sky_nb", {"DPR TYPE": "SKY", "INS OPTI6 NAME": "NB_4.05"}, at(6.3))),  # wrong filter
        (11, meta("sky", {"DPR TYPE": "SKY"}, at(6.9))),
        (12, meta("dark", {"DPR CATG": "CALIB", "DPR TYPE": "DARK"}, at(6.2))),
        (20, meta("flat_l", {"DPR CATG": "CALIB", "DPR TYPE": "FLAT,SKY"}, at(23.5, -1))),
        (21, meta("flat_l2", {"DPR CATG": "CALIB", "DPR TYPE": "FLAT,SKY"}, at(23.6, -1))),
        (22, meta("flat_k", {"DPR CATG": "CALIB", "DPR TYPE": "FLAT,SKY", "INS OPTI6 NAME": "Ks"}, at(6.1))),
    ]
    report = associate(science, candidates)
    assert report.dataset == "NACO/CONICA/2020-03-07/OB2485392/L_prime/L27"
    assert report.chosen["background"].file_ids == [11]
    assert sorted(report.chosen["flat"].file_ids) == [20, 21]
    assert report.complete and report.warnings == []
