"""A dataset job from the queue reduces a simulated IRDIS sequence with the SPARTA files the
catalogue associated to it: its Level 1 product carries the per-frame conditions and its
provenance lists the telemetry files; ``hcdc monitor frames`` shows them to those who may see
the product."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive import products as prod
from hcdc.archive.access import AccessDenied, load_principal, local_operator
from hcdc.archive.accounts import add_user
from hcdc.archive.associations import associate_all
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.archive.telemetry import product_conditions_dir, products_conditions
from hcdc.cli import app
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

        root = ["--root", str(catalogue.settings.root)]
        runner = CliRunner()
        # the 32 px test cube reaches 4.8 lambda/D: the default 10 lambda/D annulus is refused
        too_far = runner.invoke(app, ["monitor", "frames", f"p{l1['id']}", *root])
        assert too_far.exit_code == 1 and "holds no pixel" in too_far.output
        near = ["--radius-ld", "3.5", "--width-ld", "2"]
        shown = runner.invoke(app, ["monitor", "frames", f"p{l1['id']}", *near, "--json", *root])
        assert shown.exit_code == 0, shown.output
        payload = json.loads(shown.stdout)
        assert [f["strehl"] for f in payload["frames"]] == pytest.approx(list(conditions["STREHL"]))
        assert payload["sampling_interval_s"] == pytest.approx(30.0, abs=1e-3)
        assert payload["annulus"]["radius_ld"] == 3.5 and all(f["residual"] > 0 for f in payload["frames"])
        assert set(payload["correlation_with_residual"]) == {"wind", "tau0", "strehl", "seeing"}
        text = runner.invoke(app, ["monitor", "frames", str(l1["id"]), *near, *root])
        assert text.exit_code == 0 and "residual at 3.5 lambda/D vs wind" in text.stdout
        with catalogue.engine.begin() as conn:
            add_user(conn, local_operator(), "stranger")
        public = runner.invoke(
            app, ["monitor", "frames", f"p{l1['id']}", *near, "--as", "stranger", "--json", *root]
        )
        assert public.exit_code == 0  # 2018 data: the programme's proprietary period is over
        with catalogue.engine.connect() as conn:
            stranger = load_principal(conn, "stranger")
            # while the programme was proprietary (2019), a stranger was refused
            with pytest.raises(AccessDenied, match=f"product {l1['id']}"):
                product_conditions_dir(
                    conn, stranger, l1["id"], catalogue.storage_root, now=dt.datetime(2019, 1, 1)
                )
            assert (
                product_conditions_dir(conn, local_operator(), l1["id"], catalogue.storage_root)
                == frames.parent
            )
        listed = runner.invoke(app, ["monitor", "products", "--json", *root])
        (row,) = json.loads(listed.stdout)
        assert row["product_id"] == l1["id"] and row["strehl_median"] == stored["strehl_median"]
        assert row["night"] == "2018-11-30" and row["frames_with_telemetry"] == len(mjd)
        assert (
            json.loads(
                runner.invoke(app, ["monitor", "products", "--target", "vega", "--json", *root]).stdout
            )
            == []
        )
        with catalogue.engine.connect() as conn:
            assert products_conditions(conn, stranger, now=dt.datetime(2019, 1, 1)) == []  # proprietary then
        missing = runner.invoke(app, ["monitor", "frames", "p999", *root])
        assert missing.exit_code == 1 and "999" in missing.output
    finally:
        catalogue.close()
