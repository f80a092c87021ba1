"""Administration of groups, programmes (form and CSV upload) and delegations (SQLite and
PostgreSQL): an admin changes them and every change is audited and takes effect on the rights;
anybody else is refused (403 from rule A1 of access.py) and nothing changes."""

from __future__ import annotations

import re

from hcdc.archive import accounts

from .test_portal import _signed_in, token_of


def _audit(world) -> list[tuple[str, str | None]]:
    with world.catalogue.engine.connect() as conn:
        return [
            (a["action"], (a["object"] or "").partition(":")[2])
            for a in accounts.list_audit(conn, limit=None)
            if a["actor"] == "admin"
        ]


def test_admin_manages_groups_programmes_delegations(client_at, world):
    admin = client_at()
    _signed_in(admin, "admin")
    csrf = token_of(admin, "/admin/groups")
    ok = {"follow_redirects": False}
    assert (
        admin.post(
            "/admin/groups", data={"csrf_token": csrf, "name": "gpies", "description": "GPIES"}, **ok
        ).status_code
        == 303
    )
    assert (
        admin.post(
            "/admin/groups/gpies/members", data={"csrf_token": csrf, "add": "coi, other_pi"}, **ok
        ).status_code
        == 303
    )
    admin.post("/admin/groups/gpies/members", data={"csrf_token": csrf, "remove": "other_pi"}, **ok)
    page = admin.get("/admin/groups").text
    assert re.search(r'data-group="gpies">.*?class="members">coi<', page)
    assert admin.post("/admin/groups", data={"csrf_token": csrf, "name": "gpies"}).status_code == 422
    assert (
        admin.post("/admin/groups/nogroup/members", data={"csrf_token": csrf, "add": "coi"}).status_code
        == 422
    )

    saved = admin.post(
        "/admin/programmes",
        data={
            "csrf_token": csrf,
            "prog_id": "0110.C-0001(A)",
            "pi": "other_pi",
            "cois": "coi delegate",
            "period_months": "18",
            "title": "a new one",
            "group": "gpies",
        },
        **ok,
    )
    assert saved.status_code == 303
    csv = "prog_id,pi,cois,period_months\n0110.C-0002,delegate,coi;member,6\n0110.C-0001,other_pi,member,\n"
    imported = admin.post(
        "/admin/programmes/import",
        data={"csrf_token": csrf},
        files={"csv": ("programmes.csv", csv.encode(), "text/csv")},
        **ok,
    )
    assert imported.status_code == 303, imported.text
    with world.catalogue.engine.connect() as conn:
        progs = {p["prog_id"]: p for p in accounts.list_programmes(conn)}
    assert progs["0110.C-0001"]["cois"] == ["member"] and progs["0110.C-0001"]["period_months"] == 18
    assert progs["0110.C-0002"]["pi"] == "delegate" and progs["0110.C-0002"]["cois"] == ["coi", "member"]
    bad = admin.post(
        "/admin/programmes/import",
        data={"csrf_token": csrf},
        files={"csv": ("bad.csv", b"prog_id,pi\n0110.C-0003,nobody\n", "text/csv")},
    )
    assert bad.status_code == 422 and "uploaded file bad.csv" in bad.text and "nobody" in bad.text
    assert (
        admin.post("/admin/programmes", data={"csrf_token": csrf, "prog_id": "0110.C-0001"}).status_code
        == 422
    )

    # a delegation of a dataset of the private programme: the other PI sees it, then not
    dataset = world.ids["private"]["dataset"]
    other = client_at(user="other_pi")
    assert other.get(f"/api/v1/datasets/{dataset}").status_code == 404
    granted = admin.post(
        "/admin/delegations",
        data={"csrf_token": csrf, "grantee": "other_pi", "dataset_id": str(dataset), "reason": "review"},
        **ok,
    )
    assert granted.status_code == 303
    assert other.get(f"/api/v1/datasets/{dataset}").status_code == 200
    page = admin.get("/admin/delegations").text
    delegation = int(re.findall(r'data-delegation="(\d+)"', page)[-1])
    admin.post(f"/admin/delegations/{delegation}/revoke", data={"csrf_token": csrf}, **ok)
    assert other.get(f"/api/v1/datasets/{dataset}").status_code == 404
    assert re.search(
        rf'data-delegation="{delegation}">.*?class="state">revoked<', admin.get("/admin/delegations").text
    )
    both = {"csrf_token": csrf, "grantee": "other_pi", "dataset_id": str(dataset), "prog_id": "0104.C-0007"}
    assert admin.post("/admin/delegations", data=both).status_code == 422

    audit = _audit(world)
    for entry in [
        ("group.add", "gpies"),
        ("group.members", "gpies"),
        ("programme.add", "0110.C-0001"),
        ("programme.import", "uploaded file programmes.csv"),
        ("delegation.grant", str(delegation)),
        ("delegation.revoke", str(delegation)),
    ]:
        assert entry in audit, (entry, audit)


def test_non_admins_are_refused(client_at, world):
    anonymous = client_at()
    for path in ("/admin/groups", "/admin/programmes", "/admin/delegations"):
        assert anonymous.get(path).status_code == 401
    before = _audit(world)
    with world.catalogue.engine.connect() as conn:
        delegation = accounts.list_delegations(conn)[0]["id"]
    for name in ("owner", "member"):
        user = client_at()
        _signed_in(user, name)
        csrf = token_of(user)
        for path in ("/admin/groups", "/admin/programmes", "/admin/delegations"):
            refused = user.get(path)
            assert refused.status_code == 403 and "A1" in refused.text, path
        posts = [
            ("/admin/groups", {"name": "mine"}),
            ("/admin/groups/shine/members", {"add": name}),
            ("/admin/programmes", {"prog_id": "0104.C-0007", "pi": name, "replace": "true"}),
            ("/admin/delegations", {"grantee": name, "prog_id": "0999.C-0001"}),
            (f"/admin/delegations/{delegation}/revoke", {}),
        ]
        for path, data in posts:
            assert user.post(path, data={"csrf_token": csrf, **data}).status_code == 403, path
        upload = user.post(
            "/admin/programmes/import",
            data={"csrf_token": csrf},
            files={"csv": ("p.csv", f"prog_id,pi\n0104.C-0007,{name}\n".encode(), "text/csv")},
        )
        assert upload.status_code == 403
    with world.catalogue.engine.connect() as conn:
        assert accounts.list_delegations(conn)[0]["state"] == "active"
        assert {p["prog_id"]: p["pi"] for p in accounts.list_programmes(conn)}["0104.C-0007"] == "owner"
        assert [g["members"] for g in accounts.list_groups(conn) if g["name"] == "shine"] == [["member"]]
    assert _audit(world) == before
