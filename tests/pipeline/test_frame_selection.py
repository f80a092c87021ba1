"""Level 2 variants from frames selected by AO conditions (``l2-postprocess`` 1.3,
``irdis-l1-l2-selection``): on a simulated sequence with a known bad stretch (seeing and wind
doubled for 15 minutes) the Strehl criterion rejects exactly the frames the truth says are
degraded; the choice is recorded in the product (cards, FRAMESEL table) and its summary, and
through the queue both variants become current products, neither superseding the other."""

from __future__ import annotations

import json
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
from hcdc.instruments.sphere.irdis.frame_conditions import read_conditions
from hcdc.pipeline.errors import RecipeFailed
from hcdc.pipeline.operations.worker import Worker, queue_datasets
from hcdc.pipeline.registry import get_recipe, run_recipe
from hcdc.science.monitoring.selection import SELECTION_EXTNAME

BAD = (600.0, 1500.0, 2.0, 2.0)  # seconds since the template's start, seeing and wind factors
FAST = ["algorithm=pca", "ncomp=2", "compute_contrast=false", "previews=false"]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night
    from hcdc.instruments.sphere.irdis.simulate_ao import AoTelemetrySpec

    out = tmp_path_factory.mktemp("night") / "raw"
    spec = AoTelemetrySpec(bad_stretches=(BAD,))
    return simulate_irdis_night(out, seed=7, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=spec)


@pytest.fixture(scope="module")
def level1(night, tmp_path_factory):
    raw = sorted([f.path for f in night.files] + night.ao_telemetry.files)
    work = tmp_path_factory.mktemp("l1")
    return run_recipe("level1-irdis", {"raw": raw}, ["science_dim=32", "psf_dim=16"], work_dir=work)


def _in_bad_stretch(night, mjd: np.ndarray) -> np.ndarray:
    start = night.ao_telemetry.windows[0].start.mjd
    since = (np.asarray(mjd) - start) * 86400.0
    return (since >= BAD[0]) & (since < BAD[1])


def test_strehl_selection_rejects_the_degraded_frames(night, level1, tmp_path):
    table = read_conditions(level1.outputs["product"])
    bad = _in_bad_stretch(night, table["MJD"])
    assert 0 < bad.sum() < len(table)
    truth = night.ao_telemetry.truth_at(np.asarray(table["MJD"]))["strehl"]
    limit = 0.5 * (truth[bad].max() + truth[~bad].min())  # between the two populations
    assert truth[bad].max() < truth[~bad].min()
    result = run_recipe(
        "l2-postprocess",
        {"level1": level1.outputs["product"]},
        [*FAST, f'frame_selection={{"strehl_min": {limit:.4f}}}'],
        work_dir=tmp_path / "sel",
    )
    summary = result.outputs["summary"]
    record = summary["frame_selection"]
    # the frames that straddle the stretch's edges (mid-DIT within one 64 s DIT) may go either way
    edge = np.abs(np.diff(bad.astype(int), prepend=bad[0])) > 0
    edge |= np.roll(edge, -1)
    used = np.zeros(len(table), dtype=bool)
    used[record["frames_used"]] = True
    assert np.array_equal(used[~edge], ~bad[~edge])
    assert record["kept"] == used.sum() and record["frames"] == len(table)
    assert summary["variant"].startswith("frames-selected-")
    assert summary["conditions"]["strehl_median"] > summary["conditions_all_frames"]["strehl_median"]
    assert summary["conditions"]["frames"] == used.sum()
    with fits.open(result.outputs["product"]) as hdul:
        header = hdul[0].header
        assert header["HIERARCH HCDC FRSEL"] is True
        assert header["HIERARCH HCDC FRSEL NUSED"] == used.sum()
        assert json.loads(header["HIERARCH HCDC FRSEL CRITERIA"])["strehl_min"] == pytest.approx(
            limit, abs=1e-4
        )
        rows = hdul[SELECTION_EXTNAME].data
        assert list(rows["USED"]) == list(used)
        assert all(r.startswith("strehl ") for r in rows["REASON"][~used])
        np.testing.assert_allclose(rows["STREHL"], table["STREHL"])
    # provenance records the criteria as a parameter
    assert result.provenance.parameters["frame_selection"]["strehl_min"] == pytest.approx(limit, abs=1e-4)


def test_all_frames_variant_and_version_1_2(level1, tmp_path):
    current = run_recipe(
        "l2-postprocess", {"level1": level1.outputs["product"]}, FAST, work_dir=tmp_path / "a"
    )
    summary = current.outputs["summary"]
    assert summary["frame_selection"] is None and "variant" not in summary
    assert summary["conditions"]["frames"] == summary["conditions"]["frames_with_telemetry"] > 0
    assert 0 < summary["field_rotation_deg"] < 90
    with fits.open(current.outputs["product"]) as hdul:
        assert hdul[0].header["HIERARCH HCDC FRSEL"] is False and SELECTION_EXTNAME not in hdul
    old = run_recipe(
        "l2-postprocess", {"level1": level1.outputs["product"]}, FAST, work_dir=tmp_path / "b", version="1.2"
    )
    assert "field_rotation_deg" not in old.outputs["summary"]
    with fits.open(old.outputs["product"]) as hdul:
        assert "HIERARCH HCDC FRSEL" not in hdul[0].header
    with pytest.raises(Exception, match="frame_selection"):
        get_recipe("l2-postprocess", "1.2").parse_params({"frame_selection": {"strehl_min": 0.5}})


def test_bad_criteria_and_inputs_are_refused(level1, tmp_path):
    recipe = get_recipe("l2-postprocess")
    with pytest.raises(Exception, match="unknown frame-selection criteria"):
        recipe.parse_params({"frame_selection": {"strehl": 0.5}})
    with pytest.raises(Exception, match="at least one criterion"):
        recipe.parse_params({"frame_selection": {}})
    with pytest.raises(RecipeFailed, match="keeps 0 of"):
        run_recipe(
            "l2-postprocess",
            {"level1": level1.outputs["product"]},
            [*FAST, 'frame_selection={"strehl_min": 0.99}'],
            work_dir=tmp_path / "none",
        )


def test_user_cube_without_conditions_refuses_ao_criteria(tmp_path):
    from hcdc.science.simulation.adi import simulate_adi_cube

    sim = simulate_adi_cube(n_frames=6, size=41, seed=1)
    fits.writeto(tmp_path / "cube.fits", sim.cube)
    np.savetxt(tmp_path / "angles.txt", sim.angles)
    fits.writeto(tmp_path / "psf.fits", sim.psf)
    inputs = {"cube": tmp_path / "cube.fits", "angles": tmp_path / "angles.txt", "psf": tmp_path / "psf.fits"}
    with pytest.raises(RecipeFailed, match="per-frame CONDITIONS table"):
        run_recipe(
            "l2-postprocess",
            inputs,
            [*FAST, 'frame_selection={"strehl_quantile": 0.2}'],
            work_dir=tmp_path / "x",
        )
    # an image criterion needs no telemetry
    result = run_recipe(
        "l2-postprocess",
        inputs,
        [*FAST, 'frame_selection={"correlation_min": -1.0}'],
        work_dir=tmp_path / "y",
    )
    assert result.outputs["summary"]["frame_selection"]["kept"] == 6


@pytest.mark.slow
def test_queue_keeps_both_variants_current(night, tmp_path: Path, database_url: str):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        assert ingest(catalogue, [night.out_dir], workers=1).quarantined == 0
        associate_all(catalogue.engine)
        with catalogue.engine.connect() as conn:
            (dataset_id,) = conn.scalars(select(Dataset.id)).all()
        parameters = ["level1.science_dim=32", "level1.psf_dim=16"] + [
            f"{node}.{p}" for node in ("level2", "level2_selected") for p in FAST
        ]
        for _ in range(2):  # a second run supersedes each variant by its own new version
            queue_datasets(catalogue, [dataset_id], workflow="irdis-l1-l2-selection", parameters=parameters)
            with Worker(catalogue, processes=0) as worker:
                outcomes = worker.run(once=True)
            assert [o.state for o in outcomes] == ["done"], outcomes[0].error
        with catalogue.engine.connect() as conn:
            level2 = [p for p in prod.list_products(conn) if p["level"] == 2]
            details = [prod.product_detail(conn, p["id"], catalogue.storage_root) for p in level2]
        variants = {d["summary"].get("variant") for d in details}
        assert len(level2) == 2 and None in variants and len(variants) == 2
        assert all(d["version"] == 2 for d in details)
        selected = next(d for d in details if d["summary"].get("variant"))
        assert selected["summary"]["frame_selection"]["criteria"]["strehl_quantile"] == 0.2
        assert selected["lineage"] == f"dataset/{dataset_id}/level2-image/{selected['summary']['variant']}"
    finally:
        catalogue.close()
