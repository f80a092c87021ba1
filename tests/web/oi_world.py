"""Interferometry in the web tests' access world (tests/web/world.py): real OIFITS files ingested
into collections in every access state, a calibrator granule, a survey followed by a group.

============ ==================================== ============================== ==============
label        file (real, ../shared/data/oifits)   state at BEFORE (2026-06-01)   at AFTER (2029)
============ ==================================== ============================== ==============
oi-embargoed PIONIER alf Cen A 2016-05-31,        secure, embargo 144 months     public
             collection "oi-secure" (PI owner,    from t_max (to 2028-05-31):
             delegate holds a collection grant)   owner, delegate, staff
oi-calibr.   PIONIER alf Eri 2014-09-21 flagged   calibrator: public at once     public
             HIERARCH PRO SCIENCE = F, oi-secure  (R11)
oi-private   PIONIER AX Cir, "oi-proprietary"     proprietary: other_pi (its     same (never
             (PI other_pi)                        data PI) and staff             by the clock)
oi-open      PIONIER HD142527 2013-06-04,         public rights (R12)            public
             "oi-public"
============ ==================================== ============================== ==============

Each file also has a model fit (``oi.fits``: a Level 3 ``oifits-model-fit`` product of no
dataset, its file as source, as ``hcdc oi fit`` makes them): rule R17 makes it visible exactly
when the file's granules are.

The embargo of 144 months is synthetic: the real files are 10-16 years old, and the matrix needs
a release between BEFORE and AFTER. The survey "ISSP-W" (group "shine": the member; targets of
tests/data/survey/issp_targets.csv plus one marker name) is seen by the member and staff only
(R16), at any date.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select

from hcdc.archive import products as prod
from hcdc.archive.access import local_operator
from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import CollectionSpec, add_collection, assign_file, delegate_granules
from hcdc.archive.interferometry_models import GranuleRow
from hcdc.archive.interferometry_survey import import_targets
from hcdc.archive.models import File
from hcdc.archive.storage import resolve_stored_path

from .world import World

REAL = {
    "oi-embargoed": ("PIONIER_alfCenA_2016-05-31.fits", "oi-secure"),
    "oi-calibrator": ("PIONIER_alfEri_2014-09-21.fits", "oi-secure"),
    "oi-private": ("PIONIER_AXCir_merged.oifits", "oi-proprietary"),
    "oi-open": ("PIONIER_HD142527_2013-06-04.fits", "oi-public"),
}
SURVEY = "ISSP-W"
#: a target name only the survey's pages and API show (a marker of the survey)
SURVEY_MARKER = "Survey_Marker_Star_7731"
TARGETS = Path(__file__).parents[1] / "data" / "survey" / "issp_targets.csv"


@dataclass
class OiWorld:
    granules: dict[str, list[int]] = field(default_factory=dict)  # label -> granule ids
    files: dict[str, int] = field(default_factory=dict)  # label -> file id
    sha256: dict[str, str] = field(default_factory=dict)  # label -> file checksum (a marker)
    fits: dict[str, int] = field(default_factory=dict)  # label -> its model fit's product id
    fit_markers: dict[str, str] = field(default_factory=dict)  # label -> provenance record id


def add_interferometry(world: World, shared_data: Path, tmp: Path) -> OiWorld:
    """Ingest the four real files into their collections and create the survey (see above)."""
    admin = local_operator()
    catalogue = world.catalogue
    incoming = tmp / "oi-incoming"
    incoming.mkdir()
    sources = {}
    for label, (name, _collection) in REAL.items():
        target = incoming / name
        shutil.copy(shared_data / "oifits" / "real" / name, target)
        if label == "oi-calibrator":
            with fits.open(target, mode="update") as hdul:
                hdul[0].header["HIERARCH PRO SCIENCE"] = False
        sources[label] = target
    with catalogue.engine.begin() as conn:
        add_collection(
            conn,
            admin,
            CollectionSpec("oi-secure", "vlti", owner="owner", embargo_months=144, data_rights="secure"),
        )
        add_collection(
            conn, admin, CollectionSpec("oi-proprietary", "vlti", owner="other_pi", data_rights="proprietary")
        )
        add_collection(conn, admin, CollectionSpec("oi-public", "vlti", data_rights="public"))
        delegate_granules(conn, admin, "delegate", "oi-secure", reason="analysis")
    report = ingest(catalogue, list(sources.values()), workers=1, copy=True)
    assert report.ingested == len(sources), report
    oi = OiWorld()
    with catalogue.engine.begin() as conn:
        for label, path in sources.items():
            file_id = conn.scalar(select(File.id).where(File.path == str(path), File.is_current))
            assign_file(conn, admin, file_id, REAL[label][1])
            oi.files[label] = file_id
            oi.sha256[label] = conn.scalar(select(File.sha256).where(File.id == file_id))
            oi.granules[label] = list(
                conn.scalars(select(GranuleRow.id).where(GranuleRow.file_id == file_id))
            )
        stored = {
            label: str(resolve_stored_path(*conn.execute(
                select(File.storage, File.stored_path).where(File.id == oi.files[label])
            ).one(), catalogue.storage_root))
            for label in REAL
        }  # fmt: skip
        targets = tmp / "survey.csv"
        targets.write_text(TARGETS.read_text() + f"{SURVEY_MARKER},,,2020-01-01,marker\n")
        import_targets(conn, admin, SURVEY, str(targets), "shine")
    _add_fits(world, oi, stored)
    return oi


def _add_fits(world: World, oi: OiWorld, stored: dict[str, str]) -> None:
    """One model-fit product per file, registered as the worker registers a fit job's product
    (its sources linked by ``products.link_product_sources``)."""
    catalogue = world.catalogue
    for label in REAL:
        folder = prod.staging_dir(catalogue.storage_root, f"web-fit-{label}")
        (folder / "fits.json").write_text(json.dumps({"model": "ud", "results": []}))
        final = prod.publish_directory(folder, folder.with_name(f"web-fit-{label}"))
        record_id = f"fit-{label}-{uuid.uuid4().hex}"
        record = {
            "id": record_id,
            "recipe": "oifits-fit",
            "recipe_version": "1.0",
            "workflow": "oifits-fit",
            "parameters": {"model": "ud"},
            "parents": [],
            "inputs": [{"name": "oifits", "kind": "raw_files", "files": [{"path": stored[label]}]}],
        }
        spec = prod.ProductSpec(
            lineage=f"web-fit/{label}",
            recipe="oifits-fit",
            recipe_version="1.0",
            record=record,
            storage_dir=final,
            files=prod.collect_files(final, {"fits": final / "fits.json"}),
            level=3,
            product_type="oifits-model-fit",
            dataset_id=None,
            target=None,
            workflow="oifits-fit",
            summary={"model": "ud"},
        )

        def link(conn, ids, path=stored[label]):  # noqa: ANN001, ANN202 - the worker's step
            prod.link_product_sources(conn, ids, [path], catalogue.storage_root)

        (product_id,) = prod.register_products(catalogue.engine, [spec], catalogue.storage_root, within=link)
        oi.fits[label] = product_id
        oi.fit_markers[label] = record_id


@pytest.fixture(name="world")
def world_with_interferometry(world, shared_data, tmp_path):
    """The access world of tests/web/world.py with interferometry added (``world.oi``); import it
    into a test module to override ``world`` there."""
    world.oi = add_interferometry(world, shared_data, tmp_path)
    return world


#: Level 0 observation log entries (ObsPortal exposures, no file) in the same collections, one per
#: access state; the exposure id is a marker (in obs_id, the listing and the exposure's link)
LEVEL0 = {
    # label: (collection, exp_id, obs_type, interferometer, ESO DP.ID); an import writes OiDB's
    # 'secure' rights, so the one of the proprietary collection (embargo 0) has a release date in
    # 2100 (exp_date_release): its data PI other_pi and staff only
    "l0-embargoed": ("oi-secure", "L0MARK-embargoed-5521", "science", "CHARA", None),
    "l0-calibrator": ("oi-secure", "L0MARK-calibrator-5522", "calib", "CHARA", None),
    "l0-private": ("oi-proprietary", "L0MARK-private-5523", "science", "CHARA", None),
    "l0-open": ("oi-public", "L0MARK-open-5524", "science", "VLTI", "PIONI.2016-05-31T03:04:05.678"),
}
#: 2016-05-31 03:50 UTC: the embargoed one is public from 2028-05-31 (144 months), between BEFORE and AFTER
LEVEL0_MJD = 57539.16


def add_level0(world: World, oi: OiWorld, tmp: Path) -> dict[str, int]:
    """Import one ObsPortal VOTable per collection (see :data:`LEVEL0`) into the world (the
    collections of :func:`add_interferometry`, created here when absent); returns label ->
    granule id (also put in ``oi.granules``)."""
    from archive.test_obsportal_level0 import FIELDS, _row, write_votable

    from hcdc.archive.interferometry_models import OiCollection
    from hcdc.archive.obsportal import import_obsportal

    with world.catalogue.engine.begin() as conn:
        if conn.scalar(select(OiCollection.id).where(OiCollection.name == "oi-secure")) is None:
            admin = local_operator()
            add_collection(
                conn,
                admin,
                CollectionSpec("oi-secure", "vlti", owner="owner", embargo_months=144, data_rights="secure"),
            )
            add_collection(
                conn,
                admin,
                CollectionSpec("oi-proprietary", "vlti", owner="other_pi", data_rights="proprietary"),
            )
            add_collection(conn, admin, CollectionSpec("oi-public", "vlti", data_rights="public"))
            delegate_granules(conn, admin, "delegate", "oi-secure", reason="analysis")

    # exposure ids as text (ObsPortal's are numbers; a text marker cannot occur by chance elsewhere)
    fields = tuple((n, "char" if n in ("exp_id", "exp_header_id") else k, u) for n, k, u in FIELDS)
    ids = {}
    with world.catalogue.engine.begin() as conn:
        for number, (label, (collection, exp_id, kind, array, dp_id)) in enumerate(LEVEL0.items()):
            row = _row(0, "HD 37128", LEVEL0_MJD + number * 0.01, obs_type=kind, interferometer_name=array)
            row.update(exp_id=exp_id, exp_header_id=dp_id or "", target_name=f"L0 target {label}")
            if label == "l0-private":
                row["exp_date_release"] = "2100-01-01T00:00:00"
            table = write_votable(tmp / f"{label}.vot", [row], fields)
            report = import_obsportal(conn, local_operator(), table, collection)
            assert report["added"] == 1 and not report["errors"], report
            ids[label] = conn.scalar(
                select(GranuleRow.id).where(
                    GranuleRow.obs_collection == collection, GranuleRow.obs_id == exp_id
                )
            )
            oi.granules[label] = [ids[label]]
    return ids
