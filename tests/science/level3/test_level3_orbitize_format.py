"""orbitize-format reading and writing: the real files of ../shared/data/level3/bound, the
generic quant1/quant2 form, ISO epochs, bad input, and a lossless round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hcdc.science.level3.orbitize_format import (
    AstrometryFormatError,
    format_orbitize,
    read_orbitize,
    read_orbitize_text,
)

# objects and their epoch counts (RV rows and commented-out rows skipped)
EXPECTED = {
    "orbitize_betaPic.csv": {"1": 34},
    "orbitize_GJ504.csv": {"1": 7},
    "orbitize_hd206893b.csv": {"1": 9},
    "orbitize_HD4747.csv": {"1": 3},
    "orbitize_hr8799e_1epochgravity.csv": {"1": 12},
    "51eri_b_derosa2020_table2.csv": {"51 Eri b": 14},
    "hr8799_bc_octofitter_docs.csv": {"HR 8799 b": 17, "HR 8799 c": 13},
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_files_are_read(level3: Path, name: str) -> None:
    objects = read_orbitize(level3 / "bound" / name)
    assert {o.name: len(o) for o in objects} == EXPECTED[name]
    for o in objects:
        assert np.all(np.diff(o.mjd) >= 0)


@pytest.mark.shared_data
def test_mixed_rows_and_gravity_correlation(level3: Path) -> None:
    (e,) = read_orbitize(level3 / "bound" / "orbitize_hr8799e_1epochgravity.csv")
    rows = {round(r["mjd"], 2): r for r in e.to_rows()}
    # a sep/PA row: 382.6 mas at 265.13 deg
    assert rows[56609.0]["sep_mas"] == pytest.approx(382.6)
    assert rows[56609.0]["pa_deg"] == pytest.approx(265.13)
    # the GRAVITY row keeps its RA/Dec correlation
    assert rows[58358.24]["radec_corr"] == pytest.approx(-0.53)
    assert rows[58358.24]["ra_err_mas"] == pytest.approx(0.07)


def test_quant_form_iso_epochs_and_round_trip() -> None:
    text = (
        "epoch,object,quant1,quant1_err,quant2,quant2_err,quant12_corr,quant_type\n"
        "2015-01-30,1,451.81,2.06,170.01,0.26,,seppa\n"
        "2016-09-18T09:21:36,1,-10.5,1.0,20.25,2.0,0.25,radec\n"
        "57700,1,3.2,0.1,,,,rv\n"
        "58442.21,2,434.22,2.01,149.64,0.23,0.1,seppa\n"
    )
    objects = read_orbitize_text(text)
    assert [(o.name, len(o)) for o in objects] == [("1", 2), ("2", 1)]
    assert objects[0].mjd[0] == pytest.approx(57052.0)
    assert objects[0].mjd[1] == pytest.approx(57649.39)
    for form in ("radec", "seppa"):
        again = read_orbitize_text(format_orbitize(objects, form))
        for a, b in zip(objects, again, strict=True):
            assert a.name == b.name
            np.testing.assert_array_equal(a.mjd, b.mjd)
            np.testing.assert_allclose([a.ra, a.dec], [b.ra, b.dec], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(a.cov, b.cov, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("object,sep,sep_err,pa,pa_err\n1,400,2,30,0.2\n", "no 'epoch'"),
        ("epoch,object,sep,sep_err,pa,pa_err\n2015.5,1,400,2,30,0.2\n", "line 2: epoch 2015.5 is not an MJD"),
        ("epoch,object,sep,sep_err,pa,pa_err\n57000,1,400,,30,0.2\n", "line 2: sep/pa row without sep_err"),
        ("epoch,object,raoff,raoff_err,decoff,decoff_err\n57000,1,4,0,3,1\n", "errors must be positive"),
        ("epoch,object,sep,sep_err\n57000,1,,\n", "no astrometry"),
        ("epoch,object,sep,sep_err,pa,pa_err\nyesterday,1,400,2,30,0.2\n", "neither an MJD nor an ISO"),
        ("epoch,object,sep,sep_err,pa,pa_err\n57000,0,400,2,30,0.2\n", "object 0 is the host"),
        ("# only a comment\n", "no header"),
        ("epoch,object,rv,rv_err\n57000,0,1.0,0.1\n", "no relative astrometry"),
    ],
)
def test_bad_input_names_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AstrometryFormatError, match=message) as info:
        read_orbitize_text(text, "bad.csv")
    assert str(info.value).startswith("bad.csv")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(AstrometryFormatError, match="cannot read"):
        read_orbitize(tmp_path / "missing.csv")
