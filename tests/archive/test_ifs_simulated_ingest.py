"""A simulated raw IFS night is ingested, classified and associated like real IFS files.

The simulator (hcdc.instruments.sphere.ifs.simulate) writes the IFS keywords of the real headers in
shared/data/sphere_headers; here the whole night goes through ``ingest`` and the association rules
on SQLite and PostgreSQL: every science file must be classified as its real counterpart, and every
calibration need of the IFS rules (sphere.md section b) must be met by the simulated calibrations.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hcdc.archive.associations import associate_all, association_view
from hcdc.archive.models import Association
from hcdc.instruments.sphere.ifs.metadata import IFS_LAMPS_BY_MODE
from hcdc.instruments.sphere.ifs.simulate import SimulatedIfsNight, simulate_ifs_night

from .simulated_ingest import SPHERE_CLASS_BY_DPR_TYPE, ingest_simulated


@pytest.fixture(scope="module", params=["YJ", "YJH"])
def ifs_night(request, tmp_path_factory: pytest.TempPathFactory) -> SimulatedIfsNight:
    return simulate_ifs_night(tmp_path_factory.mktemp(f"ifs_{request.param}"), mode=request.param, seed=2)


def test_simulated_ifs_night_ingests_and_associates(catalogue, ifs_night: SimulatedIfsNight) -> None:
    by_name, dataset_ids = ingest_simulated(catalogue, [f.path for f in ifs_night.files])
    expected_class = {**SPHERE_CLASS_BY_DPR_TYPE, "SPECPOS,LAMP": "SPECPOS", "WAVE,LAMP": "WAVE"}
    for f in ifs_night.files:
        _, cls, mode, arm = by_name[f.path.name]
        want = expected_class.get(f.dpr_type) or ("IFU_FLAT" if f.dpr_tech == "IFU" else "DETECTOR_FLAT")
        assert (cls, mode, arm) == (want, ifs_night.mode.hcdc_mode, "IFS"), f.path.name
    assert len(dataset_ids) == 1  # one science sequence; calibrations form no dataset
    assert associate_all(catalogue.engine) == dataset_ids
    with catalogue.engine.connect() as conn:
        view = association_view(conn, dataset_ids[0])
        stored = {fid for (fid,) in conn.execute(select(Association.calibration_file_id))}
    assert view["missing"] == [], view["missing"]
    chosen = {item["need"]: item for item in view["chosen"]}
    ids = {name: v[0] for name, v in by_name.items()}
    lamps = IFS_LAMPS_BY_MODE[ifs_night.mode.hcdc_mode]
    assert {f"detector_flat:{lamp}" for lamp in lamps} <= set(chosen)
    for need, dpr_type in (("specpos", "SPECPOS,LAMP"), ("wave", "WAVE,LAMP")):
        assert chosen[need]["file_id"] == ids[ifs_night.select(dpr_type)[0].path.name]
    ifu_flat = next(f for f in ifs_night.files if f.dpr_type == "FLAT,LAMP" and f.dpr_tech == "IFU")
    assert chosen["ifu_flat"]["file_id"] == ids[ifu_flat.path.name]
    assert chosen["calib_dark"]["file_id"] == ids[ifs_night.select("DARK")[0].path.name]
    # both DITs of every detector-flat lamp are associated
    for lamp in lamps:
        assert {ids[f.path.name] for f in ifs_night.select("FLAT,LAMP", lamp=lamp)} <= stored
    science = {ids[f.path.name] for f in ifs_night.files if f.dpr_catg == "SCIENCE"}
    assert science.isdisjoint(stored - {ids[f.path.name] for f in ifs_night.select("SKY")})
