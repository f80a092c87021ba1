"""The "my tokens" page (SQLite, PostgreSQL): create with a lifetime (secret shown once), list,
revoke; a revoked token stops working on the API at once; users manage only their own tokens
(rule A7), every change is audited, every form needs the CSRF token."""

from __future__ import annotations

import datetime as dt
import re

from hcdc.archive import accounts

from .test_portal import _signed_in, token_of
from .world import BEFORE


def _create(client, csrf: str, label: str = "laptop", days: str = "30"):
    return client.post("/my/tokens", data={"csrf_token": csrf, "label": label, "days": days})


def test_create_list_revoke_and_the_api_follows(client_at, world):
    coi = client_at()
    assert coi.get("/my/tokens", follow_redirects=False).headers["location"] == "/login?next=/my/tokens"
    _signed_in(coi, "coi")
    csrf = token_of(coi, "/my/tokens")
    made = _create(coi, csrf)
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-token-secret">(hcdc_[^<]+)<', made.text).group(1)
    expires = re.search(r"expires (\d{4}-\d\d-\d\d)", made.text).group(1)
    assert expires == (BEFORE + dt.timedelta(days=30)).date().isoformat()  # the app's clock
    api = client_at()
    api.headers["Authorization"] = f"Bearer {secret}"
    assert api.get("/api/v1/me").json()["name"] == "coi"
    listing = coi.get("/my/tokens").text
    assert secret not in listing  # shown once
    prefix = secret.split("_")[1]
    row = re.search(rf'<tr data-prefix="{prefix}"><td>(\d+)</td>.*?class="state">(\w+)<', listing)
    token_id, state = int(row.group(1)), row.group(2)
    assert state == "active" and "laptop" in listing
    # the world's other tokens of coi (made by the set-up) are listed; nobody else's
    with world.catalogue.engine.connect() as conn:
        mine = {t["prefix"] for t in accounts.list_tokens(conn, "coi")}
        theirs = {t["prefix"] for t in accounts.list_tokens(conn) if t["user"] != "coi"}
    assert all(f'data-prefix="{p}"' in listing for p in mine)
    assert not any(f'data-prefix="{p}"' in listing for p in theirs)
    revoked = coi.post(f"/my/tokens/{token_id}/revoke", data={"csrf_token": csrf}, follow_redirects=False)
    assert revoked.status_code == 303
    assert re.search(
        rf'data-prefix="{prefix}"><td>{token_id}</td>.*?class="state">revoked<', coi.get("/my/tokens").text
    )
    assert api.get("/api/v1/me").status_code == 401  # at once, on every worker (the database says so)
    with world.catalogue.engine.connect() as conn:
        actions = [(a["action"], a["actor"]) for a in accounts.list_audit(conn)]
    assert ("token.create", "coi") in actions and ("token.revoke", "coi") in actions


def test_only_own_tokens_csrf_and_bad_lifetimes(client_at, world):
    owner, coi = client_at(), client_at()
    _signed_in(owner, "owner")
    _signed_in(coi, "coi")
    with world.catalogue.engine.connect() as conn:
        owners = [t for t in accounts.list_tokens(conn, "owner") if t["state"] == "active"]
    csrf = token_of(coi, "/my/tokens")
    refused = coi.post(f"/my/tokens/{owners[0]['id']}/revoke", data={"csrf_token": csrf})
    assert refused.status_code == 403 and "A7" in refused.text
    assert coi.post(f"/my/tokens/{owners[0]['id']}/revoke", data={}).status_code == 403  # no CSRF
    assert coi.post("/my/tokens", data={"label": "x", "days": "3"}).status_code == 403  # no CSRF
    assert client_at(user="owner").get("/api/v1/me").json()["name"] == "owner"  # still works
    for days in ("0", "367", "ten"):
        assert _create(coi, csrf, days=days).status_code == 422, days
    anonymous = client_at()
    anonymous.get("/login")
    assert anonymous.post("/my/tokens/1/revoke", data={"csrf_token": "x"}).status_code == 403
