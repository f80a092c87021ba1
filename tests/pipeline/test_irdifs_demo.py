"""``hcdc demo --irdifs``: an IRDIFS night (IRDIS DB_H23 and IFS YJ observing 51 Eri at once, one
set of companions) simulated, ingested as two datasets, both reduced by the standard workflows
chosen from their modes (``irdis-l1-l2`` and ``ifs-l1-l2``), on SQLite and PostgreSQL.

Known answers: the IFS arm finds both companions where they were put (the IRDIS arm, at the
'small' scale, finds neither: measured, docs/ifs.md section 6); the IFS Level 2 carries the
per-channel 5-sigma contrast curves (39 rows, ``PERWAVE``) and the Level 3 companion spectra;
the IFS headers name the IRDIS half's filter that the IRDIS dataset was taken with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.sphere.irdifs import irdis_companions, simulate_irdifs_night
from hcdc.pipeline.operations.demo import IRDIFS_NIGHT, run_demo
from hcdc.pipeline.workflows.ifs import LEVEL1_VERSION


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
    # the workflow's pinned Level 1 (0.5: cross-talk corrected, band-edge response; 0.6 newest)
    pinned_level1 = f"level1-ifs {LEVEL1_VERSION}"
    assert any(p["recipe"] == pinned_level1 for p in arms["IFS"]["products"]), arms["IFS"]["products"]
    assert sorted(p["level"] for p in arms["IFS"]["products"]) == [1, 2, 3]
    assert sorted(p["level"] for p in arms["IRDIS"]["products"]) == [1, 2]
    # IFS finds both companions where they were put (measured, seed 3: 180 mas at 1.75 mas and
    # contrast 3.16e-4, S/N 20.5; the methane one at 1.26 mas, 1.64e-4 for 1.64e-4 mean over YJ)
    for true_sep in (180.0, 300.0):
        found = [d for d in arms["IFS"]["detections"] if d["true_separation_mas"] == true_sep]
        assert found, (true_sep, arms["IFS"]["detections"])
        best = min(found, key=lambda d: d["offset_mas"])
        assert best["offset_mas"] < 3.75, best  # 0.5 px at 7.46 mas/px
        assert abs(best["contrast"] / best["true_contrast"] - 1.0) < 0.2, best
    # IRDIS ('small' scale, 16 files, DB_H23): measured, no detection -- 180 mas at 3e-4 and
    # 300 mas at 1.1e-4 (H2/H3 mean) are below its limit on this short, small simulation
    # (docs/ifs.md section 6); what it does find must be real
    assert all(d["true_separation_mas"] is not None for d in arms["IRDIS"]["detections"])
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
