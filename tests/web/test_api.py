"""The REST API on the access world (SQLite and PostgreSQL): search, detail, downloads, jobs, admin."""

from __future__ import annotations

import hashlib
import io
import zipfile

from .world import AFTER, BEFORE


def test_me_and_the_public_account(client_at):
    assert client_at().get("/api/v1/me").json()["name"] == "public"  # anonymous is the public account
    me = client_at(user="owner").get("/api/v1/me").json()
    assert (me["name"], me["authenticated_by"]) == ("owner", "token")
    bad = client_at().get("/api/v1/me", headers={"Authorization": "Bearer hcdc_nope_nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"


def test_product_search_filters_and_pages(client_at, world):
    owner = client_at(user="owner")
    everything = owner.get("/api/v1/products", params={"limit": 500}).json()
    mine = {world.ids[k]["product"] for k in ("private", "embargoed", "delayed", "public")}
    assert {p["id"] for p in everything["items"]} == mine and everything["total"] == 4
    page = owner.get(
        "/api/v1/products", params={"limit": 3, "offset": 3, "sort": "id", "descending": False}
    ).json()
    assert page["total"] == 4 and [p["id"] for p in page["items"]] == [max(mine)]
    assert owner.get("/api/v1/products", params={"target": "51 eri", "level": 3}).json()["total"] == 0
    assert owner.get("/api/v1/products", params={"programme": "0104.C-0007(B)"}).json()["total"] == 4
    assert owner.get("/api/v1/products", params={"night_from": "2025-01-01"}).json()["total"] == 1
    with_detections = owner.get("/api/v1/products", params={"has_detections": True}).json()
    n_detections = with_detections["items"][0]["n_detections"] if with_detections["items"] else 0
    assert (with_detections["total"] == 4) == (n_detections > 0)
    algorithm = everything["items"][0]["algorithm"]
    assert owner.get("/api/v1/products", params={"algorithm": algorithm}).json()["total"] == 4
    assert owner.get("/api/v1/products", params={"algorithm": "nope"}).json()["total"] == 0
    assert owner.get("/api/v1/products", params={"sort": "password"}).status_code == 422
    assert owner.get("/api/v1/products", params={"ra": 10}).status_code == 422  # a cone needs all three


def test_product_detail_charts_and_provenance(client_at, world):
    pid = world.ids["public"]["product"]
    anonymous = client_at()
    detail = anonymous.get(f"/api/v1/products/{pid}").json()
    assert detail["id"] == pid and detail["dataset_visible"] is True
    assert all("/" not in f["name"] for f in detail["files"])  # names, never server paths
    assert str(world.catalogue.storage_root) not in str(detail)
    charts = anonymous.get(f"/api/v1/products/{pid}/charts").json()
    assert charts["separation_unit"] == "mas" and charts["curves"] and charts["snr_map"]["z"]
    assert len(charts["detections"]) == len(detail["detections"])
    tree = anonymous.get(f"/api/v1/products/{pid}/provenance").json()
    raw = tree["inputs"][0]["files"][0]
    assert raw["file_id"] == world.ids["public"]["file"] and len(raw["sha256"]) == 64


def test_downloads_are_streamed_with_checksums(client_at, world):
    pid = world.ids["public"]["product"]
    anonymous = client_at()
    detail = anonymous.get(f"/api/v1/products/{pid}").json()
    one = detail["files"][0]
    response = anonymous.get(f"/api/v1/products/{pid}/files/{one['id']}")
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == one["sha256"]
    assert response.headers["x-checksum-sha256"] == one["sha256"]
    assert "attachment" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(anonymous.get(f"/api/v1/products/{pid}/download").content))
    names = archive.namelist()
    manifest = archive.read(f"hcdc-product-{pid}/MANIFEST.sha256").decode().splitlines()
    assert len(manifest) == len(detail["files"]) == len(names) - 1
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256(archive.read(f"hcdc-product-{pid}/{name}")).hexdigest() == digest
    assert {line.split("  ")[0] for line in manifest} == {f["sha256"] for f in detail["files"]}
    raw = anonymous.get(f"/api/v1/files/{world.ids['public']['file']}/download")
    assert raw.status_code == 200 and raw.content.startswith(b"SIMPLE  =")


def test_no_path_traversal_in_product_files(client_at, world):
    """A product-file row pointing outside the store (as a tampered row would) is not served."""
    from sqlalchemy import update

    from hcdc.archive.pipeline_models import ProductFile

    pid = world.ids["public"]["product"]
    fid = world.product_files[pid][0]
    secret = world.catalogue.settings.root / "web-secret-outside.txt"
    secret.write_text("not for you")
    with world.catalogue.engine.begin() as conn:
        conn.execute(
            update(ProductFile).where(ProductFile.id == fid).values(path="../web-secret-outside.txt")
        )
    client = client_at(user="admin")
    assert client.get(f"/api/v1/products/{pid}/files/{fid}").status_code == 404
    assert client.get(f"/api/v1/products/{pid}/files/..%2F..%2Fhcdc.toml").status_code in (404, 422)
    assert client.get("/static/..%2F..%2Fapp.py").status_code == 404


def test_request_a_reduction_is_validated_and_counted(client_at, world):
    owner = client_at(user="owner")
    ds = world.ids["private"]["dataset"]
    bad = owner.post(
        "/api/v1/jobs", json={"dataset_id": ds, "workflow": "irdis-l1-l2", "parameters": {"level2.ncomp": -3}}
    )
    assert bad.status_code == 422 and "ncomp" in bad.json()["detail"]
    unknown = owner.post("/api/v1/jobs", json={"dataset_id": ds, "workflow": "l2-user-cube"})
    assert unknown.status_code == 422  # not a dataset workflow
    hidden = owner.post("/api/v1/jobs", json={"dataset_id": world.ids["other"]["dataset"]})
    assert hidden.status_code == 404
    made = owner.post("/api/v1/jobs", json={"dataset_id": ds, "parameters": {"level2.ncomp": 2}})
    assert made.status_code == 201, made.text
    job = owner.get(made.json()["url"]).json()
    assert job["state"] == "queued" and job["parameters"] == ["level2.ncomp=2"]
    # quota: 2 concurrent jobs by default, one already queued by the world (A6)
    again = owner.post("/api/v1/jobs", json={"dataset_id": ds})
    assert again.status_code == 403 and "A6" in again.json()["detail"]
    assert client_at().post("/api/v1/jobs", json={"dataset_id": ds}).status_code == 401
    listed = owner.get("/api/v1/jobs").json()
    assert {j["id"] for j in listed["items"]} == {world.job, made.json()["id"]}
    assert client_at(user="coi").get(made.json()["url"]).status_code == 404  # R10


def test_admin_endpoints(client_at):
    admin, owner = client_at(user="admin"), client_at(user="owner")
    assert owner.get("/api/v1/admin/users").status_code == 403
    assert {u["name"] for u in admin.get("/api/v1/admin/users").json()} >= {"owner", "public"}
    made = admin.post("/api/v1/admin/users", json={"name": "newbie", "password": "long enough pw"})
    assert made.status_code == 201
    assert owner.post("/api/v1/admin/users", json={"name": "sneaky"}).status_code == 403
    assert admin.patch("/api/v1/admin/users/newbie", json={"active": False}).status_code == 200
    assert admin.post("/api/v1/admin/users", json={"name": "bad name!"}).status_code == 422
    actions = [e["action"] for e in admin.get("/api/v1/admin/audit").json()]
    assert "user.add" in actions and "user.disable" in actions


def test_counts_follow_the_clock(client_at):
    before = client_at(BEFORE).get("/api/v1/stats").json()
    after = client_at(AFTER).get("/api/v1/stats").json()
    assert before["products_by_level"] == {"L2": 1}  # only the public one
    assert after["products_by_level"] == {"L2": 6}
    assert sum(after["files_by_instrument"].values()) == 7
