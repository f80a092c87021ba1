"""Administration of groups, programmes and delegations in the real browser (Playwright +
Debian's chromium, as in test_browser.py), as the admin; the same pages refused to a user."""

from __future__ import annotations

import pytest

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)

pytestmark = pytest.mark.browser


def test_admin_pages_in_the_browser(chromium_browser, server, world, tmp_path):
    from playwright.sync_api import expect

    from hcdc.archive import accounts

    csv = tmp_path / "programmes.csv"
    csv.write_text("prog_id,pi,cois,period_months,title\n0110.C-0002,delegate,coi;member,6,imported\n")
    page = chromium_browser.new_page()
    sign_in(page, server, "admin", "/admin")
    page.click('#admin-sections a[href="/admin/groups"]')
    page.fill("#group-name", "gpies")
    page.fill("#group-description", "GPIES survey team")
    page.click("#group-create")
    row = page.locator('#groups tr[data-group="gpies"]')
    row.locator("input[name=add]").fill("coi member")
    row.locator("button[type=submit]").click()
    expect(row.locator(".members")).to_have_text("coi, member")
    row.locator("input[name=remove]").fill("member")
    row.locator("button[type=submit]").click()
    expect(row.locator(".members")).to_have_text("coi")
    shot(page, "admin-groups")

    page.goto(server + "/admin/programmes")
    page.fill("#prog-id", "0110.C-0001")
    page.fill("#prog-pi", "other_pi")
    page.fill("#prog-cois", "coi")
    page.fill("#prog-period", "18")
    page.select_option("#prog-group", "gpies")
    page.click("#programme-save")
    prog = page.locator('#programmes tr[data-prog="0110.C-0001"]')
    expect(prog.locator(".pi")).to_have_text("other_pi")
    expect(prog.locator(".cois")).to_have_text("coi")
    page.set_input_files("#programme-csv", str(csv))
    page.click("#programme-import-button")
    expect(page.locator('#programmes tr[data-prog="0110.C-0002"] .cois')).to_have_text("coi, member")
    shot(page, "admin-programmes")

    page.goto(server + "/admin/delegations")
    page.fill("#grantee", "member")
    page.select_option("#grant-programme", "0110.C-0001")
    page.fill("#grant-reason", "joint paper")
    page.click("#grant-button")
    granted = page.locator("#delegations tr", has_text="joint paper")
    expect(granted.locator(".state")).to_have_text("active")
    shot(page, "admin-delegations")
    granted.locator("button.revoke").click()
    expect(page.locator("#delegations tr", has_text="joint paper").locator(".state")).to_have_text("revoked")
    page.goto(server + "/admin")
    audit = page.locator("#audit-table").inner_text()
    for action in (
        "group.add",
        "group.members",
        "programme.add",
        "programme.import",
        "delegation.grant",
        "delegation.revoke",
    ):
        assert action in audit, action
    assert chromium_browser.errors == [], chromium_browser.errors

    user = chromium_browser.new_page()
    sign_in(user, server, "owner", "/my")
    for path in ("/admin/groups", "/admin/programmes", "/admin/delegations"):
        response = user.goto(server + path)
        assert response.status == 403, path
        expect(user.locator("main")).to_contain_text("A1")
    with world.catalogue.engine.connect() as conn:
        assert [g["members"] for g in accounts.list_groups(conn) if g["name"] == "gpies"] == [["coi"]]
