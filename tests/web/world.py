"""A small data centre for the web tests: accounts, programmes and data in every access state.

Objects (each a dataset with one raw science file and one registered Level 2 product whose
files are a real ``l2-user-cube`` product made once per session by the worker):

=========== ==================== ============================================================
label       programme            state at BEFORE (2026-06-01)            at AFTER (2029-06-01)
=========== ==================== ============================================================
private     owner's 0104.C-0007  observed 2026-01-10: raw and product    public
                                 private (PI, co-I, delegate, staff)
embargoed   owner's 0104.C-0007  observed 2024-09-01: raw public,        public
                                 product embargoed until 2026-09-01
delayed     owner's 0104.C-0007  observed 2024-01-01: product due        public
                                 2026-01-01, delayed by the PI to 2027-06
survey      1100.C-0481 (group)  observed 2026-01-10: survey group only  public
other       other's 0999.C-0001  observed 2026-01-10: other PI only      public
public      owner's 0104.C-0007  observed 2020-01-01: everything public  public
=========== ==================== ============================================================

plus a calibration file (public at once) and a job queued by the owner, in a batch of the owner's
with a log (one line a traceback naming a server path: staff only).
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from archive.access_world import add_dataset, add_file
from astropy.io import fits
from sqlalchemy import insert, select, update

from hcdc.archive import accounts
from hcdc.archive import products as prod
from hcdc.archive.access import load_principal, local_operator, mjd_of
from hcdc.archive.db import Catalogue, init_data_centre
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Batch, Job, Product, ProductFile
from hcdc.pipeline.operations import jobs as jq
from hcdc.science.checksums import sha256_file

BEFORE = dt.datetime(2026, 6, 1)
AFTER = dt.datetime(2029, 6, 1)
PASSWORD = "correct horse battery"
#: the owner's job log: a line for the owner and staff, a traceback (server path) for staff only
JOB_LOG_MARKER = "job-log-marker-7f3a"
TRACEBACK_MARKER = "/srv/hcdc-traceback-marker/recipe.py"
USERS = {
    "admin": "admin",
    "owner": "user",
    "coi": "user",
    "delegate": "user",
    "member": "user",
    "other_pi": "user",
}
OBJECTS = {
    "private": ("0104.C-0007(A)", dt.datetime(2026, 1, 10)),
    "embargoed": ("0104.C-0007(B)", dt.datetime(2024, 9, 1)),
    "delayed": ("0104.C-0007(A)", dt.datetime(2024, 1, 1)),
    "survey": ("1100.C-0481(A)", dt.datetime(2026, 1, 10)),
    "other": ("0999.C-0001(A)", dt.datetime(2026, 1, 10)),
    "public": ("0104.C-0007(A)", dt.datetime(2020, 1, 1)),
}


@dataclass
class L2Source:
    """A real Level 2 product made by the worker: its files, provenance record and summary."""

    files: list[tuple[Path, str]]  # (path, role)
    record: dict[str, Any]
    summary: dict[str, Any]


def make_l2_source(tmp: Path) -> L2Source:
    """Run the ``l2-user-cube`` workflow on a small simulated ADI cube (one companion)."""
    from hcdc.pipeline.operations.worker import Worker
    from hcdc.science.simulation.adi import simulate_adi_cube

    sim = simulate_adi_cube(
        n_frames=16, size=49, fwhm=4.0, rotation=70.0, companions=[(12.0, 300.0, 1e-2)], seed=4
    )
    for name in ("cube", "psf"):
        fits.writeto(tmp / f"{name}.fits", getattr(sim, name))
    fits.writeto(tmp / "angles.fits", -sim.angles)
    catalogue = init_data_centre(tmp / "dc")
    try:
        inputs = {n: tmp / f"{n}.fits" for n in ("cube", "angles", "psf")}
        jq.queue_job(
            catalogue.engine,
            inputs=inputs,
            workflow="l2-user-cube",
            parameters=[
                "ncomp=2",
                "pixel_scale_mas=12.25",
                f"star_flux={sim.star_flux}",
                'contrast_options={"nbranch": 1}',
            ],
        )
        with Worker(catalogue, processes=0) as worker:
            outcomes = worker.run(once=True)
        assert outcomes and outcomes[0].product_ids, outcomes
        with catalogue.engine.connect() as conn:
            pid = outcomes[0].product_ids[-1]
            row = conn.execute(select(Product).where(Product.id == pid)).one()
            files = [
                (catalogue.storage_root / f.path, f.role)
                for f in conn.execute(select(ProductFile).where(ProductFile.product_id == pid))
            ]
            record = prod.get_record(conn, pid)
        keep = tmp / "l2"
        keep.mkdir()
        kept = []
        for path, role in files:
            target = keep / path.name
            shutil.copy2(path, target)
            kept.append((target, role))
        return L2Source(kept, record, row.summary)
    finally:
        catalogue.close()


@dataclass
class World:
    catalogue: Catalogue
    ids: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> dataset/file/product ids
    tokens: dict[str, str] = field(default_factory=dict)  # user -> bearer token
    calibration_file: int = 0
    job: int = 0
    batch: int = 0
    product_files: dict[int, list[int]] = field(default_factory=dict)


def _raw_file(
    catalogue: Catalogue,
    conn: Any,
    prog_id: str | None,
    when: dt.datetime,
    dataset_id: int | None,
    calibration: bool = False,
) -> int:
    file_id = add_file(conn, prog_id, mjd_of(when), is_calibration=calibration, dataset_id=dataset_id)
    raw = catalogue.settings.root / "raw" / f"raw-{file_id}.fits"
    raw.parent.mkdir(parents=True, exist_ok=True)
    header = fits.Header({"OBJECT": "51 Eri", "HIERARCH ESO OBS PROG ID": prog_id or "", "TESTID": file_id})
    fits.PrimaryHDU(np.zeros((4, 4), np.float32), header).writeto(raw)
    conn.execute(
        update(File)
        .where(File.id == file_id)
        .values(
            path=str(raw),
            stored_path=str(raw),
            sha256=sha256_file(raw),
            size=raw.stat().st_size,
            target="51 Eri",
            night=when.date(),
            instrument="SPHERE",
            type="OBJECT",
        )
    )
    return file_id


def build_world(tmp: Path, database_url: str, source: L2Source) -> World:
    catalogue = init_data_centre(tmp / "dc", database_url=database_url)
    world = World(catalogue)
    admin = local_operator()
    with catalogue.engine.begin() as conn:
        for name, role in USERS.items():
            accounts.add_user(conn, admin, name, role=role, password=PASSWORD)
        accounts.add_group(conn, admin, "shine")
        accounts.set_group_members(conn, admin, "shine", add=["member"])
        accounts.save_programme(conn, admin, accounts.ProgrammeSpec("0104.C-0007", pi="owner", cois=("coi",)))
        accounts.save_programme(conn, admin, accounts.ProgrammeSpec("0999.C-0001", pi="other_pi"))
        accounts.save_programme(conn, admin, accounts.ProgrammeSpec("1100.C-0481", pi="admin", group="shine"))
        accounts.delegate(conn, admin, "delegate", prog_id="0104.C-0007", reason="analysis")
        for name in USERS:
            world.tokens[name] = accounts.create_token(conn, admin, name, days=3650, now=BEFORE).secret
        for label, (prog_id, when) in OBJECTS.items():
            ds = add_dataset(conn, prog_id, mjd_end=mjd_of(when), mjd_start=mjd_of(when))
            conn.execute(
                update(Dataset)
                .where(Dataset.id == ds)
                .values(target="51 Eri", instrument="SPHERE", mode="DBI", night=when.date(), setup="DB_H23")
            )
            world.ids[label] = {"dataset": ds, "file": _raw_file(catalogue, conn, prog_id, when, ds)}
        world.calibration_file = _raw_file(
            catalogue, conn, "60.A-9800(A)", dt.datetime(2026, 1, 10), None, True
        )
    specs = []
    for label in OBJECTS:
        ids = world.ids[label]
        folder = prod.staging_dir(catalogue.storage_root, f"web-{label}")
        for path, _role in source.files:
            shutil.copy2(path, folder / path.name)
        final = prod.publish_directory(folder, folder.with_name(f"web-{label}"))
        with catalogue.engine.connect() as conn:
            raw_sha = conn.scalar(select(File.sha256).where(File.id == ids["file"]))
        record = {
            **source.record,
            "id": f"{label}-{uuid.uuid4().hex}",
            "parents": [],
            "inputs": [
                {
                    "name": "raw",
                    "kind": "raw_files",
                    "files": [{"path": f"/raw/{label}.fits", "sha256": raw_sha}],
                }
            ],
        }
        outputs = {"product": next(final / p.name for p, role in source.files if role == "product")}
        specs.append(
            prod.ProductSpec(
                lineage=prod.dataset_lineage(ids["dataset"], "level2-image"),
                recipe=record["recipe"],
                recipe_version=record["recipe_version"],
                record=record,
                storage_dir=final,
                files=prod.collect_files(final, outputs),
                level=2,
                product_type="level2-image",
                dataset_id=ids["dataset"],
                target="51 Eri",
                workflow="irdis-l1-l2",
                summary=source.summary,
            )
        )
    product_ids = prod.register_products(catalogue.engine, specs, catalogue.storage_root)
    for label, pid in zip(OBJECTS, product_ids, strict=True):
        world.ids[label]["product"] = pid
    with catalogue.engine.begin() as conn:
        owner = load_principal(conn, "owner")
        accounts.delay_release(
            conn, owner, world.ids["delayed"]["product"], dt.datetime(2027, 6, 1), "paper in prep"
        )
        for pid in product_ids:
            world.product_files[pid] = list(
                conn.scalars(
                    select(ProductFile.id).where(ProductFile.product_id == pid).order_by(ProductFile.id)
                )
            )
    world.job = jq.queue_job(
        catalogue.engine, dataset_id=world.ids["private"]["dataset"], workflow="irdis-l1-l2"
    )
    with catalogue.engine.begin() as conn:
        owner = load_principal(conn, "owner")
        accounts.record_job_owner(conn, world.job, owner)
        world.batch = conn.execute(
            insert(Batch)
            .values(
                label="the owner's batch",
                owner_user_id=owner.id,
                created_by=owner.name,
                parameters=[],
                selection={"datasets": [world.ids["private"]["dataset"]]},
            )
            .returning(Batch.id)
        ).scalar_one()
        conn.execute(update(Job).where(Job.id == world.job).values(batch_id=world.batch))
    jq.append_log(
        catalogue.engine,
        world.job,
        1,
        [
            ("info", JOB_LOG_MARKER),
            ("traceback", f'Traceback (most recent call last):\n  File "{TRACEBACK_MARKER}"'),
        ],
    )
    return world
