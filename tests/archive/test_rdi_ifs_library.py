"""RDI reference libraries of IFS Level 1 cubes (issue 15): three simulated IFS-YJ stars (same
set-up, each with SPARTA telemetry) reduced by ``level1-ifs``, catalogued, and a library built for
the first from the other two -- found through ``level1_ifs.fits`` (not ``frames.fits``), read by
the IFS cheap reader (memory-mapped cube and ``CONDITIONS`` only), ranked by correlation or by
similar conditions (five quantities), and reduced by ``l2-rdi``. SQLite and PostgreSQL.

The simulated stars do not share their speckles (the IFS simulator draws them from the seed), so
this tests the mechanics, not a contrast gain; the gain is measured on IRDIS
(tests/archive/test_rdi_library.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from hcdc.archive import products as prod
from hcdc.archive.access import AccessContext, local_operator
from hcdc.archive.associations import associate_all
from hcdc.archive.catalogue import UserCatalogue
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.archive.rdi_library import LibrarySettings
from hcdc.pipeline.registry import run_recipe

TARGETS = (("HD 11", 70.0, -2.5), ("HD 12", 75.0, -10.0), ("HD 13", 80.0, 5.0))


@pytest.fixture(scope="module")
def ifs_night(tmp_path_factory):
    """Raw files (with SPARTA files) and the Level 1 product folder of each star."""
    from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night
    from hcdc.instruments.sphere.irdis.simulate import Target

    out = tmp_path_factory.mktemp("rdi_ifs")
    raw, level1 = [], {}
    for i, (name, ra, dec) in enumerate(TARGETS):
        night = simulate_ifs_night(
            out / f"raw{i}",
            mode="YJ",
            seed=10 + i,
            scale="small",
            target=Target(name, ra, dec),
            night=f"2018-11-{20 + i}",
            ao_telemetry=True,
        )
        sparta = [night.out_dir / f for f in night.extra["ao_telemetry"]["files"]]
        result = run_recipe(
            "level1-ifs", {"raw": [f.path for f in night.files] + sparta}, work_dir=out / f"l1_{i}"
        )
        raw.append(night.out_dir)
        level1[name] = (Path(result.outputs["product"]).parent, result.outputs["summary"])
    return {"raw": raw, "level1": level1}


def _centre(ifs_night, database_url: str, root: Path):
    catalogue = init_data_centre(root / "dc", database_url=database_url)
    for folder in ifs_night["raw"]:
        assert ingest(catalogue, [folder], workers=1).quarantined == 0
    associate_all(catalogue.engine)
    with catalogue.engine.connect() as conn:
        by_target = {
            r.target: r.id
            for r in conn.execute(select(Dataset.id, Dataset.target).where(Dataset.arm == "IFS"))
        }
    specs = []
    for name, (folder, summary) in ifs_night["level1"].items():
        dest = catalogue.storage_root / "products" / name.replace(" ", "_") / "level1"
        shutil.copytree(folder, dest)
        dataset_id = by_target[name.replace(" ", "")]
        specs.append(
            prod.ProductSpec(
                lineage=prod.dataset_lineage(dataset_id, "level1-ifs-cube"),
                recipe="level1-ifs",
                recipe_version="0.5",
                record={"id": f"l1-{name}", "recipe": "level1-ifs", "recipe_version": "0.5", "parents": []},
                storage_dir=dest,
                files=[prod.FileSpec(p, "product") for p in sorted(dest.rglob("*")) if p.is_file()],
                level=1,
                product_type="level1-ifs-cube",
                dataset_id=dataset_id,
                target=name,
                summary=summary,
            )
        )
    ids = prod.register_products(catalogue.engine, specs, catalogue.storage_root)
    return catalogue, dict(zip(ifs_night["level1"], ids, strict=True))


def test_ifs_cheap_reader_reads_what_the_full_reader_reads(ifs_night):
    from hcdc.instruments.registry import read_level1, read_level1_frames
    from hcdc.instruments.sphere.ifs.frame_conditions import read_ifs_conditions

    folder = ifs_night["level1"]["HD 11"][0]
    frames = read_level1_frames(folder)
    full = read_level1(folder)
    assert frames.cube.shape == full.cube.shape and not frames.cube.flags.owndata  # a view of the file
    np.testing.assert_array_equal(np.asarray(frames.cube), full.cube)
    table = read_ifs_conditions(folder)
    assert set(frames.conditions) == set(table.colnames)
    np.testing.assert_array_equal(frames.conditions["STREHL"], np.asarray(table["STREHL"]))
    assert read_level1_frames(folder, conditions=False).conditions is None


def test_ifs_library_built_ranked_and_reduced(ifs_night, database_url, tmp_path):
    catalogue, products = _centre(ifs_night, database_url, tmp_path)
    try:
        with catalogue.engine.connect() as conn:
            cat = UserCatalogue(
                conn, catalogue.storage_root, AccessContext(conn, local_operator()), catalogue.engine
            )
            plain = cat.rdi.build(
                products["HD 11"], name="ifs-plain", settings=LibrarySettings(max_frames=500)
            )
            similar = cat.rdi.build(
                products["HD 11"],
                name="ifs-similar",
                settings=LibrarySettings(max_frames=500, conditions_weight=1.0),
            )
            path, _ = cat.rdi.file("ifs-plain")
    finally:
        catalogue.engine.dispose()
    sources = {f["product_id"] for f in plain["frames"]}
    assert sources == {products["HD 12"], products["HD 13"]}  # never the science star itself
    frames_12 = fits.getdata(ifs_night["level1"]["HD 12"][0] / "level1_ifs.fits", 0).shape[1]
    frames_13 = fits.getdata(ifs_night["level1"]["HD 13"][0] / "level1_ifs.fits", 0).shape[1]
    assert plain["n_frames"] == frames_12 + frames_13 == plain["record"]["candidate_frames"]
    correlations = [f["correlation"] for f in plain["frames"]]
    assert correlations == sorted(correlations, reverse=True)
    assert all(f["strehl"] is not None for f in plain["frames"])  # IFS conditions came along
    science = fits.getdata(ifs_night["level1"]["HD 11"][0] / "level1_ifs.fits", 0)
    cube = fits.getdata(path, 0)
    assert cube.shape == (science.shape[0], plain["n_frames"], *science.shape[-2:])  # 39 channels
    assert set(similar["record"]["science_conditions"]) == {"SEEING", "TAU0", "STREHL", "WIND", "AIRMASS"}
    assert {f["product_id"] for f in similar["frames"]} == sources
    result = run_recipe(
        "l2-rdi",
        {"level1": ifs_night["level1"]["HD 11"][0], "library": path},
        ["ncomp=2", "compute_contrast=false", "previews=false"],
        work_dir=tmp_path / "l2",
    )
    summary = result.outputs["summary"]
    assert summary["rdi_library"]["name"] == "ifs-plain"
    assert summary["rdi_library"]["frames"] == plain["n_frames"]
    image = fits.getdata(result.outputs["image"], 0) if "image" in result.outputs else None
    assert image is None or np.isfinite(image).any()
