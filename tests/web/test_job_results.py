"""A reduction requested by an account lands in its workspace (rule R8): the worker places the
job's products there in the same transaction that registers them; the requester sees them, a
colleague does not (SQLite and PostgreSQL)."""

from __future__ import annotations

from astropy.io import fits
from sqlalchemy import select

from hcdc.archive import accounts
from hcdc.archive.access import load_principal
from hcdc.archive.access_models import Workspace, WorkspaceItem
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.worker import Worker
from hcdc.science.simulation.adi import simulate_adi_cube


def test_job_products_land_in_the_requesters_workspace(world, client_at, tmp_path):
    sim = simulate_adi_cube(n_frames=12, size=41, fwhm=4.0, rotation=60.0, companions=[], seed=7)
    for name in ("cube", "psf"):
        fits.writeto(tmp_path / f"{name}.fits", getattr(sim, name))
    fits.writeto(tmp_path / "angles.fits", -sim.angles)
    engine = world.catalogue.engine
    inputs = {n: tmp_path / f"{n}.fits" for n in ("cube", "angles", "psf")}
    job = jq.queue_job(engine, inputs=inputs, workflow="l2-user-cube", parameters=["compute_contrast=false"])
    with engine.begin() as conn:
        accounts.record_job_owner(conn, job, load_principal(conn, "coi"))
    with Worker(world.catalogue, processes=0) as worker:
        outcome = worker.run_one(ids=[job])  # not the world's other (fake) job
    assert outcome.state == "done" and outcome.product_ids
    with engine.connect() as conn:
        placed = set(
            conn.scalars(
                select(WorkspaceItem.product_id)
                .join(Workspace, Workspace.id == WorkspaceItem.workspace_id)
                .where(Workspace.name == "coi")
            )
        )
    assert placed == set(outcome.product_ids)
    pid = outcome.product_ids[-1]
    assert (
        client_at(user="coi").get(f"/api/v1/products/{pid}").status_code == 200
    )  # R8: no dataset, still hers
    assert client_at(user="owner").get(f"/api/v1/products/{pid}").status_code == 404
    assert client_at(user="coi").get(f"/api/v1/jobs/{job}").json()["products"]
