"""Absolute magnitudes and CMDs on the real reference tables (UltracoolSheet, species), and the
astrometry chart (PNG and a plotly figure that plotly itself accepts)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from hcdc.science.level3.background import HostStar
from hcdc.science.level3.charts import astrometry_chart_png, astrometry_figure
from hcdc.science.level3.cmd import (
    DIAGRAMS,
    absolute_magnitude,
    cmd_figure,
    cmd_points,
    get_diagram,
    plot_cmd_png,
)
from hcdc.science.level3.orbitize_format import read_orbitize
from hcdc.science.level3.photometry_files import canonical_band, read_species_companions, read_ultracoolsheet


def test_absolute_magnitude_and_its_error() -> None:
    m, s = absolute_magnitude(10.0, 0.1, 100.0, 1.0)  # 10 pc: M = m
    assert m == pytest.approx(10.0)
    assert s == pytest.approx(math.hypot(0.1, 5 / math.log(10) * 0.01))
    with pytest.raises(ValueError, match="parallax must be positive"):
        absolute_magnitude(10.0, 0.1, -1.0)


@pytest.mark.parametrize(
    ("name", "band"),
    [
        ("Paranal/SPHERE.IRDIS_D_H23_2", "H2"),
        ("Paranal/SPHERE.IRDIS_D_H23_3", "H3"),
        ("Paranal/SPHERE.IRDIS_D_K12_1", "K1"),
        ("2MASS/2MASS.Ks", "K"),
        ("MKO/NSFCam.J", "J"),
        ("k2", "K2"),
        ("Ks", "K"),
        ("JWST/NIRCAM.F444W", None),
    ],
)
def test_band_names(name: str, band: str | None) -> None:
    assert canonical_band(name) == band


@pytest.mark.shared_data
def test_ultracoolsheet_absolute_magnitudes_match_the_table(level3: Path) -> None:
    objects = {o.name: o for o in read_ultracoolsheet(level3 / "cmd" / "ucs_cold_objects_absmag.csv")}
    assert len(objects) == 2417
    checked = 0
    with open(level3 / "cmd" / "ucs_cold_objects_absmag.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["M_J_MKO"]:
                assert objects[row["name"]].absolute("J")[0] == pytest.approx(
                    float(row["M_J_MKO"]), abs=0.002
                )
                checked += 1
    assert checked > 1000
    for d in ("J-H", "J-K", "H-K"):
        assert len(cmd_points(objects.values(), DIAGRAMS[d])) > 2000


@pytest.mark.shared_data
def test_species_companions_in_the_irdis_diagrams(level3: Path) -> None:
    comps = {
        o.name: o for o in read_species_companions(level3 / "cmd" / "species_companions_absmag_long.csv")
    }
    # HD 135344 Ab: three H2 measurements (17.76, 17.54, 17.60) averaged, M from the parallax 7.4105 mas
    ab = comps["HD 135344 Ab"]
    w = np.array([1 / 0.11**2, 1 / 0.11**2, 1 / 0.14**2])
    mean = float(np.sum(w * [17.76, 17.54, 17.60]) / w.sum())
    assert ab.absolute("H2")[0] == pytest.approx(mean + 5 * math.log10(7.4105) - 10)
    h23 = cmd_points(comps.values(), get_diagram("h2 - h3"))
    k12 = cmd_points(comps.values(), DIAGRAMS["K1-K2"])
    assert len(h23) >= 15 and len(k12) >= 15
    # colours do not depend on the parallax error; magnitudes do
    p = next(p for p in h23 if p.name == "HD 135344 Ab")
    assert p.colour == pytest.approx(ab.bands["H2"][0] - ab.bands["H3"][0])
    assert p.colour_err == pytest.approx(math.hypot(ab.bands["H2"][1], ab.bands["H3"][1]))
    assert p.absmag_err == pytest.approx(math.hypot(ab.bands["H2"][1], 5 / math.log(10) * 0.0403 / 7.4105))


@pytest.mark.shared_data
def test_cmd_png_and_plotly(level3: Path, tmp_path: Path) -> None:
    comps = read_species_companions(level3 / "cmd" / "species_companions_absmag_long.csv")
    points = cmd_points(comps, DIAGRAMS["K1-K2"])
    png = plot_cmd_png(points, DIAGRAMS["K1-K2"], tmp_path / "k12.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    fig = go.Figure(cmd_figure(points, DIAGRAMS["K1-K2"]))  # plotly validates the dict
    assert fig.layout.yaxis.autorange == "reversed"
    assert sum(len(t.x) for t in fig.data) == len(points)


@pytest.mark.shared_data
def test_astrometry_chart_of_hr8799(level3: Path, tmp_path: Path, gaia_hosts: dict[str, HostStar]) -> None:
    objects = read_orbitize(level3 / "bound" / "hr8799_bc_octofitter_docs.csv")
    host = gaia_hosts["HR 8799"]
    png = astrometry_chart_png(objects, host, tmp_path / "hr8799.png", verdicts={"HR 8799 b": "bound"})
    assert png.read_bytes()[:4] == b"\x89PNG"
    figure = astrometry_figure(objects, host, verdicts={"HR 8799 b": "bound"})
    fig = go.Figure(figure)
    names = [t.name for t in fig.data]
    assert "HR 8799 b (bound)" in names and "HR 8799 c" in names
    assert fig.layout.xaxis.autorange == "reversed"  # east left
    # one colour per epoch: the 17 epochs of b and the 13 of c share 13 dates -> 17 colours
    b = next(t for t in fig.data if t.name == "HR 8799 b (bound)")
    assert len(set(b.marker.color)) == 17
    # the track starts at the first measurement
    track = next(t for t in fig.data if t.name == "HR 8799 b: background track")
    assert (track.x[0], track.y[0]) == pytest.approx((objects[0].ra[0], objects[0].dec[0]))
