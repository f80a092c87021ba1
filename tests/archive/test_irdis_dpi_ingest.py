"""A simulated raw IRDIS DPI night is ingested, classified (mode DPI) and associated like IRDIS
imaging, on SQLite and PostgreSQL: one DPI dataset whose background (SKY or DARK,BACKGROUND at each
DIT) and lamp-flat needs (DP_0_BB_H flats) are all met by the simulated calibrations."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hcdc.archive.associations import associate_all, association_view
from hcdc.archive.models import Association
from hcdc.instruments.sphere.irdis.simulate import SimulatedNight
from hcdc.instruments.sphere.irdis.simulate_dpi import simulate_irdis_dpi_night

from .simulated_ingest import SPHERE_CLASS_BY_DPR_TYPE, ingest_simulated


@pytest.fixture(scope="module", params=["PUPIL", "FIELD"])
def dpi_night(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimulatedNight:
    """One HWP cycle in pupil tracking and one in field tracking (``INS4 COMB ROT = FIELD``,
    derotator mode SKY): both are DPI datasets with the same calibration needs."""
    return simulate_irdis_dpi_night(
        tmp_path_factory.mktemp("dpi"), seed=4, n_cycles=1, tracking=request.param
    )


def test_simulated_dpi_night_ingests_and_associates(catalogue, dpi_night: SimulatedNight) -> None:
    by_name, dataset_ids = ingest_simulated(catalogue, [f.path for f in dpi_night.files])
    expected_class = {**SPHERE_CLASS_BY_DPR_TYPE, "FLAT,LAMP": "FLAT"}
    for f in dpi_night.files:
        _, cls, mode, arm = by_name[f.path.name]
        assert (cls, mode, arm) == (expected_class[f.dpr_type], "DPI", "IRDIS"), f.path.name
    assert len(dataset_ids) == 1  # one DPI sequence; calibrations form no dataset
    assert associate_all(catalogue.engine) == dataset_ids
    with catalogue.engine.connect() as conn:
        view = association_view(conn, dataset_ids[0])
        stored = {fid for (fid,) in conn.execute(select(Association.calibration_file_id))}
    assert view["missing"] == [], view["missing"]
    chosen = {item["need"].split(":")[0] for item in view["chosen"]}
    assert {"background", "flat"} <= chosen
    ids = {name: v[0] for name, v in by_name.items()}
    flats = {ids[f.path.name] for f in dpi_night.files if f.dpr_type == "FLAT,LAMP"}
    assert flats <= stored  # the five DP_0_BB_H lamp flats
    science = {ids[f.path.name] for f in dpi_night.files if f.dpr_catg == "SCIENCE"}
    sky = {ids[f.path.name] for f in dpi_night.files if f.dpr_type == "SKY"}
    assert science.isdisjoint(stored - sky)
