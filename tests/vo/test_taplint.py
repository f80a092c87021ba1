"""STILTS taplint and pyvo against a live uvicorn server on loopback with the access world in it,
on SQLite and on PostgreSQL (with pgSphere).

The reports are kept as artefacts (``tests/artifacts/taplint-<database>.txt``, path printed).
Without stilts the test skips with the reason (fails under CI=true)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers.live_server import serve_app
from web.oi_world import LEVEL0, OiWorld, add_level0
from web.world import BEFORE, build_world

from hcdc.archive.obscore import rebuild_obscore
from hcdc.web.app import create_app

from .vo_tools import require_stilts

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def live_tap(tmp_path, database_url, l2_source):
    world = build_world(tmp_path, database_url, l2_source)
    with world.catalogue.engine.begin() as conn:
        rebuild_obscore(conn)
    add_level0(world, OiWorld(), tmp_path)  # Level 0 exposures without a file (ObsCore rows too)
    app = create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="taplint")
    with serve_app(app) as base:
        yield world.catalogue.engine.dialect.name, f"{base}/tap"
    world.catalogue.close()


#: ObsLocTAP (``ivoa.obsplan``) is skipped: hcdc publishes observations made, not observation
#: plans (docs/vo.md); every other stage of taplint's default list runs
SKIPPED_STAGES = "-LOC"


def run_taplint(url: str) -> tuple[str, dict[str, int]]:
    stilts = require_stilts()
    done = subprocess.run(
        [stilts, "taplint", f"tapurl={url}", "report=EWFI", "maxrepeat=20", f"stages={SKIPPED_STAGES}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = done.stdout + done.stderr
    line = next((x for x in report.splitlines() if x.startswith("Totals:")), None)
    assert line, report[-2000:]
    totals = {key.lower(): int(value) for key, value in re.findall(r"(\w+): (\d+)", line)}
    return report, totals


@pytest.mark.slow
def test_taplint(live_tap) -> None:
    dialect, url = live_tap
    report, totals = run_taplint(url)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"taplint-{dialect}.txt"
    path.write_text(report)
    print(f"taplint report: {path} {totals}")
    assert totals["errors"] == 0, [line for line in report.splitlines() if line.startswith("E-")]
    assert totals["warnings"] < 15, [line for line in report.splitlines() if line.startswith("W-")]
    failures = [line.split()[0] for line in report.splitlines() if line.startswith("F-")]
    assert failures == [], failures
    # ObsLocTAP skipped (not failed); the stages that matter did run
    sections = set(re.findall(r"^Section (\w+)", report, re.MULTILINE))
    assert "LOC" not in sections, sections
    expected = {"TMV", "TME", "TMS", "TMC", "CPV", "CAP", "AVV", "QGE", "QPO", "QAS", "UWS", "MDQ", "OBS"}
    assert sections >= expected | {"UPL", "EXA"}, sections
    # the upload stage ran its queries (sync and async) and found nothing wrong
    upload = report.split("Section UPL", 1)[1].split("Section ", 1)[0]
    assert upload.count("I-UPL-QSUB") >= 2, upload
    assert not re.search(r"^[EWF]-UPL", upload, re.MULTILINE), upload


@pytest.fixture
def live_world_tap(tmp_path, database_url, l2_source):
    """A live server and its world (for tokens)."""
    world = build_world(tmp_path, database_url, l2_source)
    with world.catalogue.engine.begin() as conn:
        rebuild_obscore(conn)
    world.oi = OiWorld()
    add_level0(world, world.oi, tmp_path)  # Level 0 exposures without a file (ObsCore rows too)
    app = create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="pyvo")
    with serve_app(app) as base:
        yield world, f"{base}/tap"
    world.catalogue.close()


def test_pyvo_sync_async_and_authenticated(live_world_tap) -> None:
    import pyvo
    import requests

    world, url = live_world_tap
    anonymous = pyvo.dal.TAPService(url)
    rows = anonymous.search("SELECT obs_publisher_did, s_region FROM ivoa.obscore").to_table()
    job = anonymous.submit_job("SELECT TOP 3 obs_publisher_did FROM ivoa.obscore ORDER BY obs_publisher_did")
    job.run().wait(timeout=60)
    job.raise_if_error()
    async_rows = job.fetch_result().to_table()
    job.delete()
    assert len(async_rows) == min(3, len(rows))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {world.tokens['owner']}"
    owner = pyvo.dal.TAPService(url, session=session)
    owner_rows = owner.search("SELECT obs_publisher_did FROM ivoa.obscore").to_table()
    assert len(owner_rows) > len(rows)
    private = f"product?{world.ids['private']['product']}"
    assert any(str(d).endswith(private) for d in owner_rows["obs_publisher_did"])
    assert not any(str(d).endswith(private) for d in rows["obs_publisher_did"])
    with pytest.raises(pyvo.dal.DALQueryError):
        anonymous.search("SELECT * FROM files")


def test_pyvo_upload_inline_and_own_result(live_world_tap) -> None:
    """pyvo uploads a table (sync and async): a cross-match of the caller's positions with the
    rights-filtered ObsCore; the upload changes nothing about which rows are visible."""
    import numpy as np
    import pyvo
    import requests
    from astropy.table import Table

    world, url = live_world_tap
    anonymous = pyvo.dal.TAPService(url)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {world.tokens['owner']}"
    owner = pyvo.dal.TAPService(url, session=session)
    every = owner.search("SELECT obs_publisher_did FROM ivoa.obscore").to_table()
    public = {
        str(d)
        for d in anonymous.search("SELECT obs_publisher_did FROM ivoa.obscore").to_table()[
            "obs_publisher_did"
        ]
    }
    assert len(every) > len(public)
    dids = [str(d) for d in every["obs_publisher_did"]]
    mine = Table(
        {
            "did": [*dids, "ivo://elsewhere/none"],
            "ra": np.linspace(0.0, 359.0, len(dids) + 1),
            "weight": np.arange(len(dids) + 1, dtype=np.int32),
            "good": np.arange(len(dids) + 1) % 2 == 0,
        }
    )
    mine["ra"].unit = "deg"
    mine["ra"].description = "a position"
    query = (
        "SELECT u.did, u.weight, o.obs_publisher_did FROM TAP_UPLOAD.mine AS u "
        "JOIN ivoa.obscore AS o ON o.obs_publisher_did = u.did ORDER BY u.weight"
    )
    echo = anonymous.search(
        "SELECT * FROM TAP_UPLOAD.mine ORDER BY weight", uploads={"mine": mine}
    ).to_table()
    assert list(echo.colnames) == ["did", "ra", "weight", "good"]
    assert list(echo["did"]) == list(mine["did"]) and str(echo["ra"].unit) == "deg"
    assert np.allclose(echo["ra"], mine["ra"]) and list(echo["weight"]) == list(mine["weight"])
    assert list(echo["good"]) == list(mine["good"]) and echo["ra"].description == "a position"
    matched = anonymous.search(query, uploads={"mine": mine}).to_table()
    assert {str(d) for d in matched["obs_publisher_did"]} == public  # rights unaffected
    job = owner.submit_job(query, uploads={"mine": mine})
    job.run().wait(timeout=60)
    job.raise_if_error()
    assert {str(d) for d in job.fetch_result().to_table()["obs_publisher_did"]} == set(dids)
    # a result of the caller's own job can be uploaded by its URL (nobody else's, no other host)
    result_url = f"{job.url}/results/result"
    again = owner.search("SELECT COUNT(*) AS n FROM TAP_UPLOAD.prev", uploads={"prev": result_url}).to_table()
    assert int(again["n"][0]) == len(every)
    with pytest.raises(pyvo.dal.DALQueryError, match="cannot be read"):
        anonymous.search("SELECT * FROM TAP_UPLOAD.prev", uploads={"prev": result_url})
    with pytest.raises(pyvo.dal.DALQueryError, match="does not fetch other hosts"):
        anonymous.search("SELECT * FROM TAP_UPLOAD.x", uploads={"x": "http://example.org/t.vot"})
    job.delete()


def test_pyvo_sees_level0_exposures_by_the_granule_rules(live_world_tap) -> None:
    """ObsPortal exposures (no file) through pyvo: anonymous sees the calibrator and the public
    one, the data PI of the secure collection the embargoed one too; OiDB's columns."""
    import pyvo
    import requests

    world, url = live_world_tap
    query = (
        "SELECT obs_id, calib_level, access_url, access_format, data_rights FROM ivoa.obscore "
        "WHERE calib_level = 0"
    )

    def level0(token: str | None) -> dict[str, dict]:
        session = requests.Session()
        if token:
            session.headers["Authorization"] = f"Bearer {world.tokens[token]}"
        table = pyvo.dal.TAPService(url, session=session).search(query).to_table()
        return {
            str(r["obs_id"]): dict(zip(table.colnames, r, strict=True))
            for r in table
            if str(r["obs_id"]).startswith("L0MARK")
        }

    anonymous, owner = level0(None), level0("owner")
    ids = {label: spec[1] for label, spec in LEVEL0.items()}
    assert set(anonymous) == {ids["l0-calibrator"], ids["l0-open"]}
    assert set(owner) == {ids["l0-calibrator"], ids["l0-open"], ids["l0-embargoed"]}
    embargoed = owner[ids["l0-embargoed"]]
    assert str(embargoed["data_rights"]) == "secure" and str(embargoed["access_format"]) == "text/html"
    assert str(embargoed["access_url"]) == f"https://obs.jmmc.fr/detail/exposure/{ids['l0-embargoed']}"
    dp_id = LEVEL0["l0-open"][4]
    assert str(anonymous[ids["l0-open"]]["access_url"]).endswith(f"eso_archive_main/query?dp_id={dp_id}")
