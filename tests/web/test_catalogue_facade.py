"""The catalogue facade (``Catalogue.as_user`` -> ``hcdc.archive.catalogue.UserCatalogue``) on the
access world of tests/web/world.py, on SQLite and PostgreSQL: registry, datastore and provenance
answer each user exactly as archive/access.py decides, and a hidden product is answered as a
missing one."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, update

from hcdc.archive.access import ANONYMOUS, AccessContext, load_principal
from hcdc.archive.catalogue import NotFound
from hcdc.archive.pipeline_models import Product, ProductFile
from hcdc.archive.search import Criteria

from .world import AFTER, BEFORE


def _principal(world, name):
    if name is None:
        return ANONYMOUS
    with world.catalogue.engine.connect() as conn:
        return load_principal(conn, name)


@pytest.mark.parametrize("name", [None, "owner", "other_pi", "member", "admin"])
def test_each_user_sees_what_access_decides(world, name):
    with world.catalogue.engine.connect() as conn:
        current = list(conn.scalars(select(Product.id).where(Product.is_current)))
    with world.catalogue.as_user(_principal(world, name), now=BEFORE) as view:
        found = {row["id"] for row in view.search_products(Criteria(limit=500)).rows}
        listed = {row["id"] for row in view.list_products(limit=None)}
        with world.catalogue.engine.connect() as conn:
            access = AccessContext(conn, view.user, BEFORE)
            allowed = {pid for pid in current if access.can_see_product(pid)}
        assert found == listed == allowed
        if name in (None, "other_pi"):
            assert allowed < set(current)  # some products are hidden from them at BEFORE
        for pid in current:
            if pid in allowed:
                assert view.product(pid)["id"] == pid
                assert view.provenance(pid)["product_id"] == pid
            else:
                for ask in (view.product, view.product_files, view.provenance, view.provenance_record):
                    with pytest.raises(NotFound, match=f"^no product with id {pid}$"):
                        ask(pid)


def test_a_hidden_product_is_answered_as_a_missing_one(world):
    private = world.ids["private"]["product"]
    file_id = world.product_files[private][0]
    with world.catalogue.as_user(_principal(world, "other_pi"), now=BEFORE) as view:
        with pytest.raises(NotFound) as hidden:
            view.product_file(private, file_id)
        with pytest.raises(NotFound) as missing:
            view.product_file(10**6, file_id)
        assert str(hidden.value).replace(str(private), "N") == str(missing.value).replace(str(10**6), "N")
    # the rules are functions of the clock: once public, the same user reads it
    with world.catalogue.as_user(_principal(world, "other_pi"), now=AFTER) as view:
        assert view.product(private)["id"] == private


def test_datastore_opens_files_by_id_and_never_outside_the_store(world):
    pid = world.ids["public"]["product"]
    with world.catalogue.as_user(ANONYMOUS, now=BEFORE) as view:
        shown = view.product(pid)
        assert str(world.catalogue.storage_root) not in str(shown)  # names and ids, no server path
        for row in shown["files"]:
            with view.open_product_file(pid, row["id"]) as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == row["sha256"]
        members = view.product_zip_members(pid)
        assert sorted(info["id"] for _, info in members) == sorted(f["id"] for f in shown["files"])
        tree = view.provenance(pid)
        assert tree["inputs"][0]["files"][0]["file_id"] == world.ids["public"]["file"]
        assert view.provenance_record(pid)["recipe"] == "l2-postprocess"
    # the operator's shell gets the catalogue's whole record, storage paths included
    with world.catalogue.as_user(_principal(world, "admin"), now=BEFORE) as view:
        assert view.product_detail(pid)["storage_dir"].startswith(str(world.catalogue.storage_root))
    fid = world.product_files[pid][0]
    secret = world.catalogue.settings.root / "outside.txt"
    secret.write_text("not for you")
    with world.catalogue.engine.begin() as conn:  # a tampered row
        conn.execute(update(ProductFile).where(ProductFile.id == fid).values(path="../outside.txt"))
    with world.catalogue.as_user(_principal(world, "admin"), now=BEFORE) as view:
        with pytest.raises(NotFound, match="is not in the store"):
            view.open_product_file(pid, fid)


def test_the_command_line_reads_through_the_facade_as_the_account_named(world, monkeypatch):
    from typer.testing import CliRunner

    import hcdc.archive.access as access_module
    from hcdc.cli import app

    monkeypatch.setattr(access_module, "utcnow", lambda: BEFORE)  # the world's dates
    runner = CliRunner()
    root = ["--root", str(world.catalogue.settings.root)]
    private, other = world.ids["private"]["product"], world.ids["other"]["product"]
    refused = runner.invoke(app, ["product", str(private), "--as", "other_pi", *root])
    assert refused.exit_code == 1 and f"no product with id {private}" in refused.stderr
    hidden_tree = runner.invoke(app, ["provenance", str(private), "--as", "other_pi", *root])
    assert hidden_tree.exit_code == 1 and f"no product with id {private}" in hidden_tree.stderr
    assert runner.invoke(app, ["product", str(other), "--as", "other_pi", *root]).exit_code == 0
    assert runner.invoke(app, ["product", str(private), *root]).exit_code == 0  # the operator
    listed = runner.invoke(app, ["products", "--json", "--as", "other_pi", *root])
    ids = {row["id"] for row in json.loads(listed.stdout)["products"]}
    assert other in ids and private not in ids


@pytest.mark.parametrize("name", [None, "other_pi", "owner"])
def test_files_and_datasets_through_the_facade(world, name):
    from hcdc.archive.models import Dataset, File

    with world.catalogue.engine.connect() as conn:
        files = list(conn.scalars(select(File.id).where(File.is_current)))
        datasets = list(conn.scalars(select(Dataset.id)))
    with world.catalogue.as_user(_principal(world, name), now=BEFORE) as view:
        with world.catalogue.engine.connect() as conn:
            access = AccessContext(conn, view.user, BEFORE)
            seen_files = {f for f in files if access.can_see_file(f)}
            seen_datasets = {d for d in datasets if access.can_see_dataset(d)}
        assert {r["id"] for r in view.search_files(Criteria(limit=500)).rows} == seen_files
        assert {r["id"] for r in view.search_datasets(Criteria(limit=500)).rows} == seen_datasets
        if name is None:
            assert seen_files < set(files) and seen_datasets < set(datasets)
        for file_id in files:
            if file_id in seen_files:
                shown = view.file(file_id)
                assert "path" not in shown and "header" not in shown
                with view.open_file(file_id) as handle:
                    assert hashlib.sha256(handle.read()).hexdigest() == shown["sha256"]
            else:
                with pytest.raises(NotFound, match=f"^no file with id {file_id}$"):
                    view.open_file(file_id)
        for dataset_id in datasets:
            if dataset_id in seen_datasets:
                shown = view.dataset(dataset_id)
                assert {f["id"] for f in shown["files"]} <= seen_files
                assert {p["id"] for p in shown["products"]} <= {
                    r["id"] for r in view.list_products(limit=None, all_versions=True)
                }
            else:
                with pytest.raises(NotFound, match=f"^no dataset with id {dataset_id}$"):
                    view.dataset(dataset_id)


def test_jobs_counts_and_writes_through_the_facade(world):
    """Jobs (R10), counts, the user's writes and the administration go through the facade with
    the decisions of access.py; what the user may not see is answered as missing."""
    from hcdc.archive.access import AccessDenied
    from hcdc.archive.accounts import AccountError
    from hcdc.archive.catalogue import ReadOnlyCatalogue, UserCatalogue
    from hcdc.pipeline.operations.catalogue import ProcessingCatalogue

    job, private, public = world.job, world.ids["private"]["product"], world.ids["public"]["product"]

    def as_user(name):
        return world.catalogue.as_user(_principal(world, name), now=BEFORE, facade=ProcessingCatalogue)

    with as_user("owner") as view:  # queued it (R10)
        assert view.job(job)["id"] == job and "worker_id" not in view.job(job)
        assert [row["id"] for row in view.search_jobs().rows] == [job]
        with pytest.raises(AccessDenied, match=r"\(A4\)"):
            view.review_product(public, "validated", None)  # not a reviewer
        with pytest.raises(AccessDenied, match=r"\(A1\)"):
            view.admin()
        with pytest.raises(AccessDenied, match=r"\(A1\)"):
            view.job_action(job, "cancel")
        delayed = world.ids["delayed"]["product"]
        assert view.product_status([delayed])[delayed]["delayed_until"] is not None
        view.cancel_delay(delayed)  # the PI (A3)
        assert view.product_status([delayed])[delayed]["delayed_until"] is None
    with as_user("other_pi") as view:
        with pytest.raises(NotFound, match=f"^no job with id {job}$"):
            view.job(job)
        assert view.search_jobs().total == 0
        with pytest.raises(NotFound, match=f"^no product with id {private}$"):
            view.review_product(private, "validated", None)  # hidden: asked nothing else
        seen = sum(view.stats()["products_by_level"].values())
    with as_user("admin") as view:
        assert sum(view.admin().stats()["products_by_level"].values()) > seen
        with pytest.raises(AccountError, match="needs a reason"):
            view.review_product(public, "flagged", "  ")
        view.review_product(public, "flagged", " bad centring ")
        assert view.product_status([public, 10**6]) == {
            public: {"review": "flagged", "reason": "bad centring", "delayed_until": None}
        }
        with pytest.raises(NotFound, match="^no job 1000000$"):
            view.job_action(10**6, "cancel")
        assert view.job_action(job, "cancel") is True
        assert view.job(job)["state"] == "cancelled"  # the write is seen by the facade's next read
        assert view.job_action(job, "cancel") is False  # ended already: nothing changes
        assert [a["action"] for a in view.admin().audit_log(limit=2)] == ["job.cancel", "product.flag"]
    with world.catalogue.engine.connect() as conn:  # without the engine the facade only reads
        access = AccessContext(conn, _principal(world, "admin"))
        view = UserCatalogue(conn, world.catalogue.storage_root, access)
        with pytest.raises(ReadOnlyCatalogue):
            view.review_product(public, "validated", None)
