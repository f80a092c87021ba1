"""``hcdc motion-test`` on the real bound companions of ../shared/data/level3 (all bound), on a
simulated background star, on bad input; ``hcdc cmd`` on beta Pic b's published photometry."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hcdc.cli import app
from hcdc.science.level3.background import HostStar
from hcdc.science.level3.orbitize_format import write_orbitize
from hcdc.science.level3.simulate import background_offsets, observe

runner = CliRunner()

BOUND = {
    "orbitize_betaPic.csv": ("beta Pic", 1),
    "orbitize_GJ504.csv": ("GJ 504", 1),
    "orbitize_hd206893b.csv": ("HD 206893", 1),
    "orbitize_hr8799e_1epochgravity.csv": ("HR 8799", 1),
    "51eri_b_derosa2020_table2.csv": ("51 Eri", 1),
    "hr8799_bc_octofitter_docs.csv": ("HR 8799", 2),
}


def _host_options(level3: Path, name: str) -> list[str]:
    with open(level3 / "hosts" / "hosts.csv", newline="") as fh:
        row = next(
            r for r in csv.DictReader(fh) if r["host"] == name and r["catalogue"].startswith("Gaia DR3")
        )
    return [
        "--host-ra",
        row["ra_deg"],
        "--host-dec",
        row["dec_deg"],
        "--pmra",
        row["pmra_masyr"],
        "--pmdec",
        row["pmdec_masyr"],
        "--parallax",
        row["plx_mas"],
        "--parallax-err",
        row["plx_err_mas"],
    ]


@pytest.fixture(scope="module")
def level3(shared_data: Path) -> Path:
    return shared_data / "level3"


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(BOUND))
def test_every_bound_companion_is_bound(level3: Path, name: str) -> None:
    host, count = BOUND[name]
    result = runner.invoke(
        app, ["motion-test", str(level3 / "bound" / name), *_host_options(level3, host), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["objects"]) == count
    for obj in out["objects"]:
        assert obj["verdict"] == "bound", obj["reason"]
        assert obj["ln_bayes_factor"] >= 5
        assert set(obj["hypotheses"]) == {"comoving", "background", "background_pm"}
        # the stationary-background prediction at the last epoch is far from what was observed
        miss = np.hypot(
            obj["predicted_background_ra"] - obj["observed_last_ra"],
            obj["predicted_background_dec"] - obj["observed_last_dec"],
        )
        assert miss > 5 * np.hypot(obj["predicted_background_ra_err"], obj["predicted_background_dec_err"])


@pytest.mark.shared_data
def test_table_output_and_chart(level3: Path, tmp_path: Path) -> None:
    chart = tmp_path / "eri.png"
    result = runner.invoke(
        app,
        [
            "motion-test",
            str(level3 / "bound" / "51eri_b_derosa2020_table2.csv"),
            *_host_options(level3, "51 Eri"),
            "--plot",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "51 Eri b: bound" in result.stdout
    assert "background RA, Dec at last (mas)" in result.stdout  # units survive rich's markup
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_simulated_background_star_and_short_baseline(tmp_path: Path) -> None:
    host = HostStar(69.40074849308137, -2.473833383625505, 44.04884090373149, -64.02842203088811, 33.439)
    rng = np.random.default_rng(12)
    mjd = np.array([57000.0, 57400.0, 57800.0])
    bg = observe("cc1", mjd, *background_offsets(host, mjd, 900.0, -400.0, pmra=4.0, pmdec=-3.0), 3.0, rng)
    short = observe("cc2", mjd[:1].repeat(2) + [0.0, 20.0], [300.0, 300.5], [100.0, 99.0], 3.0, rng)
    path = tmp_path / "astrometry.csv"
    write_orbitize(path, [bg, short], form="seppa")
    options = [
        "--host-ra",
        "69.40074849308137",
        "--host-dec",
        "-2.473833383625505",
        "--pmra",
        "44.04884090373149",
        "--pmdec",
        "-64.02842203088811",
        "--parallax",
        "33.439",
    ]
    result = runner.invoke(app, ["motion-test", str(path), *options, "--json"])
    assert result.exit_code == 0, result.output
    verdicts = {o["name"]: o["verdict"] for o in json.loads(result.stdout)["objects"]}
    assert verdicts == {"cc1": "background", "cc2": "undetermined"}


def test_help_shows_units() -> None:
    result = runner.invoke(app, ["motion-test", "--help"])
    assert result.exit_code == 0 and "(deg, ICRS)" in result.stdout and "(mas/yr)" in result.stdout


def test_bad_astrometry_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("epoch,object,sep,sep_err,pa,pa_err\n57000,1,400,,30,0.2\n")
    result = runner.invoke(
        app,
        [
            "motion-test",
            str(path),
            "--host-ra",
            "1",
            "--host-dec",
            "2",
            "--pmra",
            "3",
            "--pmdec",
            "4",
            "--parallax",
            "5",
        ],
    )
    assert result.exit_code == 1
    assert "bad.csv, line 2" in result.output and "sep_err" in result.output
    result = runner.invoke(
        app,
        [
            "motion-test",
            str(path),
            "--host-ra",
            "1",
            "--host-dec",
            "2",
            "--pmra",
            "3",
            "--pmdec",
            "4",
            "--parallax",
            "-5",
        ],
    )
    assert result.exit_code == 1 and "parallax must be positive" in result.output


@pytest.mark.shared_data
def test_cmd_of_beta_pic_b(level3: Path, tmp_path: Path) -> None:
    """beta Pic b's NACO J, H, Ks (species companion_data.json) at the Gaia DR3 parallax: M_J matches
    the absolute magnitude tabulated in species_companions_absmag_long.csv, and the nearest field
    dwarfs are early/mid L dwarfs."""
    species = json.loads((level3 / "cmd" / "species_companion_data.json").read_text())["beta Pic b"]
    phot = tmp_path / "phot.csv"
    naco = {band: species["app_mag"][f"Paranal/NACO.{band}"] for band in ("J", "H", "Ks")}
    rows = ["object,band,mag,mag_err"] + [f"beta Pic b,{band},{m},{e}" for band, (m, e) in naco.items()]
    phot.write_text("\n".join(rows) + "\n")
    plx, plx_err = species["parallax"]
    plot = tmp_path / "cmd.png"
    result = runner.invoke(
        app,
        [
            "cmd",
            str(phot),
            "--parallax",
            str(plx),
            "--parallax-err",
            str(plx_err),
            "--diagram",
            "J-H",
            "--references",
            str(level3 / "cmd"),
            "--plot",
            str(plot),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)["diagrams"]["J-H"]
    (point,) = out["points"]
    with open(level3 / "cmd" / "species_companions_absmag_long.csv", newline="") as fh:
        published = next(
            float(r["abs_mag"])
            for r in csv.DictReader(fh)
            if r["companion"] == "beta Pic b" and r["filter"] == "Paranal/NACO.J"
        )
    assert abs(point["absmag"] - published) < point["absmag_err"]
    assert point["absmag"] == pytest.approx(12.645, abs=0.002)
    assert out["n_references"] > 2000
    spts = [r["spectral_type"] for r in out["nearest"]["beta Pic b"] if r["kind"] != "young companion"]
    assert spts and all(s.startswith("L") for s in spts), spts
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cmd_bad_band(tmp_path: Path) -> None:
    phot = tmp_path / "phot.csv"
    phot.write_text("object,band,mag,mag_err\nx,Q7,15,0.1\n")
    result = runner.invoke(app, ["cmd", str(phot), "--parallax", "20"])
    assert result.exit_code == 1 and "phot.csv, line 2" in result.output and "unknown band" in result.output
