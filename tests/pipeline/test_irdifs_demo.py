"""``hcdc demo --irdifs``: an IRDIFS night (IRDIS DB_H23 and IFS YJ observing 51 Eri at once, one
set of companions) simulated, ingested as two datasets, both reduced by the standard workflows
chosen from their modes (``irdis-l1-l2`` and ``ifs-l1-l2``), on SQLite and PostgreSQL.

Known answers: both arms find the flat companion (180 mas, PA 60 deg, 3e-4) where it was put; the
IFS Level 2 carries the per-channel 5-sigma contrast curves (39 rows, ``PERWAVE``) and the
Level 3 companion spectra; the IFS headers name the IRDIS half's filter that the IRDIS dataset
was taken with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.sphere.irdifs import irdis_companions, simulate_irdifs_night
from hcdc.pipeline.operations.demo import IRDIFS_NIGHT, run_demo


def test_irdis_companions_follow_the_ifs_spectra() -> None:
    from hcdc.instruments.sphere.ifs.simulate import DEFAULT_COMPANIONS

    flat, methane = irdis_companions(DEFAULT_COMPANIONS)
    assert flat.contrast_in("H2") == flat.contrast_in("H3") == pytest.approx(3e-4)
    # the methane band at 1660 nm: fainter in H3 than in H2 (the H2/H3 SDI signature)
    assert methane.contrast_in("H3") < 0.5 * methane.contrast_in("H2")
    with pytest.raises(ValueError, match="n_irdis_object_files"):
        simulate_irdifs_night("/nonexistent", n_irdis_object_files=0)


def test_demo_needs_something_to_simulate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to simulate"):
        run_demo(tmp_path, standard_nights=False, irdifs=False)


@pytest.mark.slow
def test_irdifs_night_through_the_demo(tmp_path: Path, database_url: str) -> None:
    report = run_demo(
        tmp_path / "dc",
        scale="small",
        seed=3,
        processes=0,
        irdifs=True,
        standard_nights=False,
        database_url=database_url,
    )
    assert report.quarantined == 0
    assert [j["state"] for j in report.jobs] == ["done", "done"], report.jobs
    arms = {a["arm"]: a for a in report.irdifs}
    assert set(arms) == {"IRDIS", "IFS"}
    assert arms["IFS"]["mode"] == "IFS-YJ"
    workflows = {arm: {p["workflow"] for p in a["products"]} for arm, a in arms.items()}
    assert workflows == {"IRDIS": {"irdis-l1-l2"}, "IFS": {"ifs-l1-l2"}}, workflows
    assert {p["workflow_version"] for p in arms["IFS"]["products"]} == {"1.1"}
    assert any(p["recipe"] == "level1-ifs 0.3" for p in arms["IFS"]["products"]), arms["IFS"]["products"]
    assert sorted(p["level"] for p in arms["IFS"]["products"]) == [1, 2, 3]
    # the flat companion (180 mas, PA 60) found by both arms where it was put
    for arm, entry in arms.items():
        found = [d for d in entry["detections"] if d["true_separation_mas"] == 180.0]
        assert found, (arm, entry["detections"])
        best = min(found, key=lambda d: d["offset_mas"])
        assert best["offset_mas"] < 7.5, (arm, best)  # ~0.6 px (IRDIS 12.25, IFS 7.46 mas/px)
        assert best["true_contrast"] == pytest.approx(3e-4)
    # IFS Level 2: per-channel 5-sigma contrast curves, a FITS table with units
    l2 = next(p for p in report.products if p["level"] == 2 and p["dataset_id"] == arms["IFS"]["dataset_id"])
    l2_file = next(Path(f["path"]) for f in l2["files"] if f["path"].endswith(".fits"))
    with fits.open(l2_file) as hdul:
        table = hdul["CONTRAST"]
        assert table.header["PERWAVE"] is True and table.header["NWAVE"] == 39
        assert table.columns["SEP_MAS"].unit == "mas"
        blue, red = (np.asarray(table.data[f"CONTRAST_{k}"]) for k in (0, 38))
        assert np.isfinite(blue).any() and np.isfinite(red).any()
        assert not np.allclose(blue, red, equal_nan=True)  # each channel its own limit
    # the IFS files name the IRDIS filter of the simultaneous IRDIS dataset
    raw = report.raw_dir / f"irdifs-{IRDIFS_NIGHT}"
    ifs_object = next(
        p
        for p in sorted((raw / "ifs").glob("SPHER*.fits"))
        if fits.getheader(p).get("HIERARCH ESO DPR TYPE") == "OBJECT"
    )
    assert fits.getheader(ifs_object)["HIERARCH ESO INS COMB IFLT"] == "DB_H23"
    assert report.irdifs_truth[1]["contrast"]["H3"] < report.irdifs_truth[1]["contrast"]["H2"]
