"""CLI paths that reach the archive through the catalogue facade (issue 9), their output,
refusals and audits, SQLite and PostgreSQL: ``hcdc workspace place``, ``hcdc release show``,
``hcdc user can-see``, ``hcdc delegate grant|revoke`` (on a product of no dataset),
``hcdc oi collection list|assign``, ``hcdc oi delegate list``, ``hcdc oi calibrators list``,
``hcdc vo rebuild-obscore`` and the owner of ``hcdc oi fit``'s jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hcdc.archive.access import AccessDenied, load_principal
from hcdc.archive.access_models import JobOwner, User
from hcdc.archive.catalogue import NotFound
from hcdc.archive.ingest import ingest
from hcdc.archive.obscore import ObsCoreRow
from hcdc.archive.pipeline_models import Job
from hcdc.cli import app
from hcdc.pipeline.operations.catalogue import ProcessingCatalogue

from .access_world import add_product

SPICA = "simulated/ASPRO2_CHARA_SPICA_zetOph.fits"  # CHARA/SPICA, zet Oph, 2023-05-12


def _invoke(root: str, *args: str):
    return CliRunner(env={"COLUMNS": "240"}).invoke(app, [*args, "--root", root])


def _ok(root: str, *args: str) -> str:
    result = _invoke(root, *args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _refused(root: str, *args: str, code: int = 1) -> str:
    result = _invoke(root, *args)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result.stderr


def _audit(root: str) -> list[dict]:
    return json.loads(_ok(root, "audit", "--json"))


def test_workspace_release_and_can_see(catalogue) -> None:
    root = str(catalogue.settings.root)
    for name in ("alice", "bob"):
        _ok(root, "user", "add", name)
    with catalogue.engine.begin() as conn:
        product = add_product(conn, None)
    # A8: users place only into their own workspace, only admins into the public one
    refused = _refused(root, "workspace", "place", "bob", f"p{product}", "--as", "alice")
    assert refused.startswith("error: ") and "A8" in refused and "own workspace" in refused
    assert "A8" in _refused(root, "workspace", "place", "public", str(product), "--as", "alice")
    assert "no workspace called 'nowhere'" in _refused(root, "workspace", "place", "nowhere", str(product))
    assert "no product" in _refused(root, "workspace", "place", "alice", "p999")
    assert "is a dataset, not a product" in _refused(root, "workspace", "place", "alice", "d1")
    out = _ok(root, "workspace", "place", "alice", str(product))
    assert out == f"product {product} placed in workspace alice\n"
    assert {w["name"]: w["products"] for w in json.loads(_ok(root, "workspace", "list", "--json"))}[
        "alice"
    ] == 1
    (entry,) = [a for a in _audit(root) if a["action"] == "workspace.place"]
    assert entry["object"] == f"product:{product}" and entry["details"] == {"workspace": "alice"}
    # a product without a dataset: never public by R4, visible to no one but staff (and placers)
    shown = json.loads(_ok(root, "release", "show", f"p{product}", "--json"))
    assert shown == {
        "product_id": product,
        "public_date": None,
        "review": None,
        "reason": None,
        "delayed_until": None,
        "public_now": False,
    }
    table = _ok(root, "release", "show", str(product))
    assert f"Product {product}" in table and "public_now" in table
    assert _refused(root, "release", "show", "p999") == "error: no product with id 999\n"
    # can-see explains a decision for any account, the unknown account named
    decision = json.loads(_ok(root, "user", "can-see", "bob", f"p{product}", "--json"))
    assert decision["user"] == "bob" and decision["object"] == f"product:{product}"
    assert decision["allowed"] is False and decision["rules_version"]
    line = _ok(root, "user", "can-see", "anonymous", f"p{product}")
    assert line.startswith(f"anonymous may see product {product}: no (")
    assert "no user called 'ghost'" in _refused(root, "user", "can-see", "ghost", "p1")
    assert "not a file, dataset or product id" in _refused(root, "user", "can-see", "bob", "x1")
    # delegations of a dataset: refused for a non-PI and for a missing dataset
    assert "no dataset with id 42" in _refused(root, "delegate", "grant", "bob", "--dataset", "42")
    assert "no delegation with id 7" in _refused(root, "delegate", "revoke", "7", "--as", "alice")


@pytest.fixture
def spica(catalogue, shared_data: Path, tmp_path: Path) -> str:
    """A data centre with the SPICA file ingested (--copy) in an embargoed collection of ``pi``."""
    source = tmp_path / "incoming" / "zetOph_SPICA.fits"
    source.parent.mkdir()
    shutil.copy(shared_data / "oifits" / SPICA, source)
    assert ingest(catalogue, [source], workers=1, copy=True).ingested == 1
    root = str(catalogue.settings.root)
    for name in ("pi", "other"):
        _ok(root, "user", "add", name)
    _ok(
        root,
        "oi",
        "collection",
        "add",
        "spica",
        "--coltype",
        "chara",
        "--owner",
        "pi",
        "--embargo-months",
        "600",
    )
    _ok(root, "oi", "collection", "add", "other-col", "--coltype", "chara", "--embargo-months", "600")
    return root


@pytest.mark.shared_data
def test_collections_delegations_calibrators_and_obscore(spica: str, catalogue, tmp_path: Path) -> None:
    root = spica
    rows = {c["name"]: c for c in json.loads(_ok(root, "oi", "collection", "list", "--json"))}
    assert rows["spica"]["granules"] == 0 and rows["other-col"]["data_pi"] is None
    table = _ok(root, "oi", "collection", "list")
    assert "Collections (2)" in table and "spica" in table
    # assign: admins only (no --as), the granules moved, audited
    assert _ok(root, "oi", "collection", "assign", "spica", "1") == "1 granule(s) now in spica\n"
    rows = {c["name"]: c for c in json.loads(_ok(root, "oi", "collection", "list", "--json"))}
    assert rows["spica"]["granules"] == 1
    assert _refused(root, "oi", "collection", "assign", "spica", "999") == (
        "error: file 999 has no granule (not a catalogued OIFITS file)\n"
    )
    assert "collection.assign" in {a["action"] for a in _audit(root)}
    # granule delegations: listed newest first, for admins
    assert json.loads(_ok(root, "oi", "delegate", "list", "--json")) == []
    _ok(root, "oi", "delegate", "grant", "other", "--collection", "spica", "--as", "pi")
    (row,) = json.loads(_ok(root, "oi", "delegate", "list", "--json"))
    assert row["grantee"] == "other" and row["collection"] == "spica" and row["granted_by"] == "pi"
    assert "Granule delegations (1)" in _ok(root, "oi", "delegate", "list")
    # the calibrator catalogue: imported (admins), listed
    table_file = tmp_path / "jsdc.csv"
    table_file.write_text("Name,RAJ2000,DEJ2000,LDD,e_LDD\nalf Cen A,219.869413,-60.834730,8.502,0.038\n")
    assert _ok(root, "oi", "calibrators", "import", str(table_file)) == (
        f"{table_file}: 1 row(s) imported into the calibrator catalogue\n"
    )
    (star,) = json.loads(_ok(root, "oi", "calibrators", "list", "--json"))
    assert star["name"] == "alf Cen A" and star["ldd"] == pytest.approx(8.502)
    assert "Calibrators" in _ok(root, "oi", "calibrators", "list")
    # ObsCore rebuilt from the catalogue: the same rows as ingest and the collection kept
    with catalogue.engine.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(ObsCoreRow))
    summary = json.loads(_ok(root, "vo", "rebuild-obscore", "--json"))
    assert summary["total"] == before == summary["files"] + summary["products"] + summary["granules"]
    assert summary["granules"] == 1
    line = _ok(root, "vo", "rebuild-obscore")
    assert line == f"ivoa.obscore: {before} rows (0 raw files, 0 products, 1 granules)\n"
    # through the facade, the administration of collections is refused to a user (A1), who
    # still reads the public calibrator catalogue and, as spica's delegate, its granule
    with catalogue.engine.connect() as conn:
        other = load_principal(conn, "other")
    with catalogue.as_user(other) as view:
        for refused in (
            view.granules.collections,
            view.granules.delegations,
            lambda: view.granules.import_calibrators(table_file),
            view.admin,
        ):
            with pytest.raises(AccessDenied, match="A1"):
                refused()
        assert [c["name"] for c in view.granules.calibrators()] == ["alf Cen A"]
        assert [g["collection"] for g in view.granules.search()] == ["spica"]


@pytest.mark.shared_data
def test_fit_jobs_are_queued_with_their_owner(spica: str, catalogue) -> None:
    root = spica
    _ok(root, "oi", "collection", "assign", "spica", "1")
    assert "no current file you may see" in _refused(
        root, "oi", "fit", "--collection", "spica", "--as", "other"
    )
    queued = json.loads(_ok(root, "oi", "fit", "--collection", "spica", "--as", "pi", "--json"))
    (job,) = queued["jobs"]
    assert job["file_id"] == 1 and job["start"] == "grid"
    shell = json.loads(_ok(root, "oi", "fit", "--collection", "spica", "--model", "ld", "--json"))
    with catalogue.engine.connect() as conn:
        owners = dict(
            conn.execute(select(JobOwner.job_id, User.name).join(User, User.id == JobOwner.user_id)).all()
        )
        row = conn.execute(select(Job).where(Job.id == job["job"])).one()
    assert owners == {job["job"]: "pi"}  # the shell's operator owns no job
    assert shell["jobs"][0]["job"] not in owners
    assert row.workflow == "oifits-fit" and row.parameters == ["fit.model=ud"] and row.state == "queued"
    assert row.inputs["oifits"][0].endswith(".fits")
    # the facade queues a fit only of a file its user may see (a hidden one is missing), and
    # writes nothing then
    with catalogue.engine.connect() as conn:
        other = load_principal(conn, "other")
    with catalogue.as_user(other, facade=ProcessingCatalogue) as view:
        with pytest.raises(NotFound):
            view.queue_oifits_fit(1, ["fit.model=ud"])
    with catalogue.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Job)) == 2
