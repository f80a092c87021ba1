"""ObsCore rows written by ingest itself (same transaction), on real OIFITS files: one row per
granule, a new file version replaces its rows, and the rebuild agrees (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from hcdc.archive.db import init_data_centre
from hcdc.archive.granules import GranuleRow
from hcdc.archive.ingest import ingest
from hcdc.archive.obscore import ObsCoreRow, rebuild_obscore


def _rows(conn):
    return sorted(
        (r.hcdc_kind, r.hcdc_key, r.target_name, r.dataproduct_type, r.em_min)
        for r in conn.execute(select(ObsCoreRow))
    )


def test_ingest_writes_granule_rows(tmp_path: Path, database_url: str, shared_data: Path) -> None:
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        path = tmp_path / "f.fits"
        shutil.copy(shared_data / "oifits" / "real" / "PIONIER_TPyx_2011.fits", path)
        ingest(catalogue, [path], workers=1)
        with catalogue.engine.connect() as conn:
            granules = {g.id for g in conn.execute(select(GranuleRow))}
            rows = _rows(conn)
        assert {key for kind, key, *_ in rows if kind == "granule"} == granules and granules
        assert all(
            kind == "granule" and dptype == "visibility" and 1e-7 < em < 1e-4
            for kind, _key, _t, dptype, em in rows
        )
        shutil.copy(shared_data / "oifits" / "real" / "AMBER_SSLep_2009.fits", path)
        assert ingest(catalogue, [path], workers=1).new_versions == 1
        with catalogue.engine.connect() as conn:
            after = _rows(conn)
        assert {t for _k, _key, t, *_ in after} == {"ss-lep"}  # the old version's rows are gone
        with catalogue.engine.begin() as conn:
            rebuild_obscore(conn)
        with catalogue.engine.connect() as conn:
            assert [r[2:] for r in _rows(conn)] == [r[2:] for r in after]
    finally:
        catalogue.close()
