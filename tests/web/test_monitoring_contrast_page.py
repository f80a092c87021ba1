"""The staff contrast-versus-conditions page (/admin/monitoring/contrast): refused to anonymous
and users; for staff, the expected-contrast model fitted on the catalogue's products and the one
product made worse than its conditions flagged (SQLite and PostgreSQL); the report links it."""

from __future__ import annotations

import json
import re

import pytest
from archive.contrast_world import DEGRADED, NIGHT0, build_contrast_world

from .world import BEFORE

URL = "/admin/monitoring/contrast"


@pytest.fixture
def contrast_world(world):
    world.ids["contrast"] = build_contrast_world(world.catalogue)
    return world


def _contrast_page(contrast_world, client_at):
    bad = contrast_world.ids["contrast"]["level2"][DEGRADED]
    assert client_at().get(URL, follow_redirects=False).status_code == 401
    refused = client_at(BEFORE, "owner").get(URL, follow_redirects=False)
    assert refused.status_code == 403 and "HD 10" not in refused.text
    page = client_at(BEFORE, "admin").get(URL)
    assert page.status_code == 200
    assert re.findall(r'data-product="(\d+)" class="problem" data-flagged="1"', page.text) == [str(bad)]
    assert "<h2>Products (1 flagged)</h2>" in page.text
    found = re.search(r'<script type="application/json" id="contrast-data">(.*?)</script>', page.text, re.S)
    chart = json.loads(found.group(1))
    assert chart["separations"] == [0.2, 0.5] and len(chart["products"]) == 14
    flagged = [p for p in chart["products"] if any(p["flagged"])]
    assert [p["flagged"] for p in flagged] == [[True, False]] and flagged[0]["label"].startswith(f"p{bad} ")
    strict = client_at(BEFORE, "admin").get(f"{URL}?factor=20")
    assert "<h2>Products (0 flagged)</h2>" in strict.text
    for query in ("factor=0.5", "nsigma=x", "wavelength=-1"):
        assert client_at(BEFORE, "admin").get(f"{URL}?{query}").status_code == 422, query
    night = NIGHT0.replace(day=NIGHT0.day + DEGRADED)
    report = client_at(BEFORE, "admin").get(f"/admin/monitoring/report?from={night}&to={night}")
    assert 'id="contrast-link"' in report.text
    assert 'data-category="contrast_worse_than_expected"' in report.text and f"p{bad}" in report.text


def _programmes_page(contrast_world, client_at):
    from archive.contrast_world import PROGRAMMES

    url = "/admin/monitoring/programmes"
    assert client_at().get(url, follow_redirects=False).status_code == 401
    assert client_at(BEFORE, "owner").get(url, follow_redirects=False).status_code == 403
    page = client_at(BEFORE, "admin").get(url)
    assert page.status_code == 200
    for prog in PROGRAMMES:
        assert f'data-programme="{prog}"' in page.text
    one = client_at(BEFORE, "admin").get(f"{url}?programme={PROGRAMMES[0]}")
    assert one.status_code == 200 and f'data-programme="{PROGRAMMES[1]}"' not in one.text
    assert f'href="/admin/monitoring/night/{NIGHT0}"' in one.text
    assert client_at(BEFORE, "admin").get(f"{url}?programme=9999.Z-0000").status_code == 404


def _astrometry_page(world, client_at):
    import datetime as dt

    from hcdc.archive.access import local_operator
    from hcdc.archive.astrometry_monitor import add_astrometric_calibration

    url = "/admin/monitoring/astrometry"
    empty = client_at(BEFORE, "admin").get(url)
    assert (
        empty.status_code == 200
        and "no measured value stored" in empty.text
        and "astrometry-data" not in empty.text
    )
    with world.catalogue.engine.begin() as conn:
        for epoch, tn in ((dt.date(2016, 3, 1), -1.75), (dt.date(2019, 5, 1), -2.25)):
            add_astrometric_calibration(
                conn,
                local_operator(),
                instrument="SPHERE",
                arm="IRDIS",
                epoch=epoch,
                true_north_deg=tn,
                true_north_err_deg=0.08,
                plate_scale_mas=12.255,
                source=f"source {epoch}",
            )
    assert client_at().get(url, follow_redirects=False).status_code == 401
    assert client_at(BEFORE, "owner").get(url, follow_redirects=False).status_code == 403
    page = client_at(BEFORE, "admin").get(url)
    assert page.text.count('data-flagged="1"') == 1 and "source 2019-05-01" in page.text
    found = re.search(r'<script type="application/json" id="astrometry-data">(.*?)</script>', page.text, re.S)
    chart = json.loads(found.group(1))
    assert len(chart["measurements"]) == 2
    # the trend (h5): one IRDIS series, True North -1.75 -> -2.25 in 3.17 yr: -0.158 deg/yr,
    # 2 points (no dof: formal error 0.08 * sqrt(2) / 3.17 yr = 0.036/yr) -> 4.4 sigma, flagged
    (trend,) = chart["trend"]
    assert trend["true_north"]["slope_per_year"] == pytest.approx(-0.5 / 3.164, rel=2e-3)
    assert trend["true_north"]["drift_flagged"] and len(trend["true_north"]["line"]) == 2
    assert 'id="astrometry-trend"' in page.text and page.text.count('data-drift="1"') == 1
    assert client_at(BEFORE, "admin").get(f"{url}?nsigma=0").status_code == 422


def _contrast_magnitudes(world, client_at):
    """Once the stars have H magnitudes in the Target Data Base, the page shows them and the
    models' magnitude slope (about 0 here: this world's contrast does not depend on them)."""
    from hcdc.archive.targets import create_target

    before = client_at(BEFORE, "admin").get(URL)
    assert "<th>star (mag)</th>" in before.text and " H</td>" not in before.text
    with world.catalogue.engine.begin() as conn:
        for i in range(14):
            create_target(conn, f"HD {1000 + i}", {"mag_h": 5.0 + 0.25 * i})
    page = client_at(BEFORE, "admin").get(URL)
    assert "<td>5.0 H</td>" in page.text and "<td>8.2 H</td>" in page.text
    slopes = re.findall(r"<td>(-?\d\.\d\d)</td><td>[\d.]+</td>\s*</tr>", page.text)
    assert len(slopes) == 2 and all(abs(float(v)) < 0.1 for v in slopes), slopes


def test_monitoring_pages_of_issue_15(contrast_world, client_at):
    """One web world per database for the three pages (building it is the slow part)."""
    _astrometry_page(contrast_world, client_at)
    _contrast_page(contrast_world, client_at)
    _programmes_page(contrast_world, client_at)
    _contrast_magnitudes(contrast_world, client_at)
