"""The portal's RDI pages (issue 15): ``/rdi`` lists the libraries the viewer may see (rule R18),
theirs first and marked, ``?mine=1`` only theirs; ``/rdi/{id}`` shows one, 404 when hidden. Both
databases; the browser test (test_rdi_browser.py) follows the navigation link."""

from __future__ import annotations

import re

from .rdi_world import add_rdi_libraries
from .world import BEFORE


def _names(html: str) -> list[str]:
    return re.findall(r'class="rdi-link">([^<]+)</a>', html)


def test_rdi_pages_show_what_the_viewer_may_see(world, client_at):
    ids = add_rdi_libraries(world)
    # anonymous and another PI: only the public library (the owner's takes private frames)
    for user in (None, "other_pi"):
        page = client_at(BEFORE, user).get("/rdi")
        assert page.status_code == 200 and _names(page.text) == ["public-lib"], user
        assert client_at(BEFORE, user).get(f"/rdi/{ids['owner-lib']}").status_code == 404
    # the owner: both, theirs first and marked; ?mine=1 only theirs
    owner = client_at(BEFORE, "owner")
    page = owner.get("/rdi")
    assert _names(page.text) == ["owner-lib", "public-lib"] and page.text.count('data-mine="1"') == 1
    assert _names(owner.get("/rdi?mine=1").text) == ["owner-lib"]
    # the co-I built the public one: it comes first for them
    assert _names(client_at(BEFORE, "coi").get("/rdi").text) == ["public-lib", "owner-lib"]
    assert sorted(_names(client_at(BEFORE, "admin").get("/rdi").text)) == ["owner-lib", "public-lib"]
    shown = owner.get(f"/rdi/{ids['owner-lib']}")
    assert shown.status_code == 200
    assert "3 of 30 examined" in shown.text and "conditions_weight = 0.0" in shown.text
    assert shown.text.count('href="/products/') >= 1 + 2 + 3  # science, 2 sources, 3 frames
    assert client_at(BEFORE, None).get(f"/rdi/{ids['public-lib']}").status_code == 200
    assert client_at(BEFORE, None).get("/rdi/999999").status_code == 404
