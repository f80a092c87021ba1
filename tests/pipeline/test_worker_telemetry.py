"""A dataset job from the queue reduces a simulated IRDIS sequence with the SPARTA files the
catalogue associated to it: its Level 1 product carries the per-frame conditions and its
provenance lists the telemetry files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from hcdc.archive import products as prod
from hcdc.archive.associations import associate_all
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.pipeline.operations.reruns import provenance_of_product
from hcdc.pipeline.operations.worker import Worker, queue_datasets


def test_dataset_job_writes_conditions_from_associated_telemetry(tmp_path: Path, database_url: str):
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    night = simulate_irdis_night(tmp_path / "raw", seed=9, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=True)
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        assert ingest(catalogue, [night.out_dir], workers=1).quarantined == 0
        associate_all(catalogue.engine)
        with catalogue.engine.connect() as conn:
            (dataset_id,) = conn.scalars(select(Dataset.id)).all()
        queue_datasets(catalogue, [dataset_id], workflow="irdis-level1", parameters=["level1.science_dim=32"])
        with Worker(catalogue, processes=0) as worker:
            outcomes = worker.run(once=True)
        assert [o.state for o in outcomes] == ["done"], outcomes[0].error
        with catalogue.engine.connect() as conn:
            (l1,) = prod.list_products(conn)
            detail = prod.product_detail(conn, l1["id"], catalogue.storage_root)
            tree = provenance_of_product(conn, l1["id"])
        frames = next(Path(f["path"]) for f in detail["files"] if Path(f["path"]).name == "frames.fits")
        with fits.open(frames) as hdul:
            conditions = hdul["CONDITIONS"].data
            mjd = np.asarray(hdul["FRAMES"].data["MJD"])
            used = sorted(hdul["AO_FILES"].data["FILE"])
        assert not conditions["NO_TELEMETRY"].any()
        truth = night.ao_telemetry.truth_at(mjd)
        np.testing.assert_allclose(conditions["STREHL"], truth["strehl"], rtol=0.05)
        assert used == sorted(p.name for p in night.ao_telemetry.files)
        # the medians are in the catalogue (the product's summary), for queries across the archive
        stored = detail["summary"]["ao_conditions"]
        assert stored["frames"] == stored["frames_with_telemetry"] == len(mjd)
        assert stored["strehl_median"] == pytest.approx(np.median(truth["strehl"]), rel=0.03)
        assert stored["seeing_median_arcsec"] == pytest.approx(np.median(truth["seeing"]), rel=0.05)
        assert stored["sampling_interval_s"] == pytest.approx(30.0, abs=1e-3)
        inputs = {Path(f["path"]).name for item in tree["inputs"] for f in item["files"]}
        assert set(used) <= inputs  # the telemetry is in the product's provenance
    finally:
        catalogue.close()
