"""A simulated raw ZIMPOL night is ingested, classified and associated (SQLite and PostgreSQL).

The simulator (hcdc.instruments.sphere.zimpol.simulate) writes the ZIMPOL keywords of
hcdc.instruments.sphere.zimpol.constants; ingest must classify every file (arm ZIMPOL, mode,
file class) and the ZIMPOL rules (bias per read-out mode, dark per DIT, flat per filters) must
choose the night's own calibrations for the one science dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hcdc.archive.associations import associate_all, association_view
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset, File
from hcdc.instruments.sphere.zimpol.simulate import SimulatedZimpolNight, simulate_zimpol_night


@pytest.fixture(scope="module")
def zimpol_night(tmp_path_factory: pytest.TempPathFactory) -> SimulatedZimpolNight:
    return simulate_zimpol_night(tmp_path_factory.mktemp("zimpol"), mode="polarimetry", seed=4)


def test_simulated_zimpol_night_ingests_and_associates(catalogue, zimpol_night: SimulatedZimpolNight) -> None:
    summary = ingest(catalogue, [f.path for f in zimpol_night.files], workers=1)
    assert (summary.ingested, summary.quarantined) == (len(zimpol_night.files), 0)
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(File.id, File.path, File.file_class, File.mode, File.arm)).all()
        dataset_ids = list(conn.scalars(select(Dataset.id)))
    by_name = {Path(path).name: (file_id, cls, mode, arm) for file_id, path, cls, mode, arm in rows}
    expected = {"OBJECT": "SCIENCE", "BIAS": "BIAS", "DARK": "DARK", "FLAT,LAMP": "FLAT"}
    for f in zimpol_night.files:
        _, cls, mode, arm = by_name[f.path.name]
        assert (cls, mode, arm) == (expected[f.dpr_type], "ZIMPOL-POL", "ZIMPOL"), f.path.name
    assert len(dataset_ids) == 1  # the Q and U cycles of one OB and setup form one dataset
    assert associate_all(catalogue.engine) == dataset_ids
    with catalogue.engine.connect() as conn:
        view = association_view(conn, dataset_ids[0])
    assert view["missing"] == [], view["missing"]
    chosen = {item["need"]: item["file_id"] for item in view["chosen"]}
    ids = {name: v[0] for name, v in by_name.items()}
    for need, dpr_type in (("bias", "BIAS"), ("dark", "DARK"), ("flat", "FLAT,LAMP")):
        assert chosen[need] == ids[zimpol_night.select(dpr_type)[0].path.name], need
