"""The TAP service's VOSI documents (capabilities, availability, tables in every form), SIA's
VOSI documents and every UWS document of an async job's life (job list, PENDING, COMPLETED and
ERROR jobs, parameters, results) validate against the IVOA schemas of
../shared/reference/vo_xsd (``stilts xsdvalidate`` with those files, not stilts' own copies)."""

from __future__ import annotations

import re
import time

from .test_voresource import client, errors, xsdvalidate  # noqa: F401 - client is a fixture


def _valid(document: bytes, tmp_path, what: str) -> None:
    done = xsdvalidate(document, tmp_path)
    assert done.returncode == 0 and not errors(done), (what, errors(done))


def test_tap_and_sia_vosi_documents_are_valid(client, tmp_path):  # noqa: F811
    for path in (
        "/tap/capabilities",
        "/tap/availability",
        "/tap/tables",
        "/tap/tables?detail=min",
        "/tap/tables/ivoa.obscore",
        "/tap/tables/tdb.detections",
        "/tap/tables/TAP_SCHEMA.columns",
        "/sia/capabilities",
        "/sia/availability",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        _valid(response.content, tmp_path, path)


def _job(client, query: str) -> str:  # noqa: F811
    response = client.post("/tap/async", data={"LANG": "ADQL", "QUERY": query}, follow_redirects=False)
    assert response.status_code == 303
    return response.headers["location"].removeprefix("http://vo.example.org")


def _finish(client, job: str) -> str:  # noqa: F811
    client.post(f"{job}/phase", data={"PHASE": "RUN"}, follow_redirects=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = client.get(f"{job}/phase").text
        if phase in ("COMPLETED", "ERROR"):
            return phase
        time.sleep(0.1)
    raise AssertionError(f"{job} did not finish")


def test_uws_documents_are_valid_through_a_jobs_life(client, tmp_path):  # noqa: F811
    good = _job(client, "SELECT TOP 2 obs_id FROM ivoa.obscore")
    bad = _job(client, "SELECT nothing FROM nowhere")
    pending = client.get(good).content
    assert b"<uws:phase>PENDING</uws:phase>" in pending
    documents = {
        "pending job": pending,
        "job list": client.get("/tap/async").content,
        "parameters": client.get(f"{good}/parameters").content,
        "results (none yet)": client.get(f"{good}/results").content,
    }
    assert _finish(client, good) == "COMPLETED" and _finish(client, bad) == "ERROR"
    documents |= {
        "completed job": client.get(good).content,
        "error job": client.get(bad).content,
        "results": client.get(f"{good}/results").content,
        "job list (finished)": client.get("/tap/async?PHASE=COMPLETED").content,
    }
    assert b"<uws:errorSummary" in documents["error job"]
    assert b"results/result" in documents["results"]
    for what, document in documents.items():
        _valid(document, tmp_path, what)
    # the check can fail: a job without its owner element is refused (UWS 1.1 makes it mandatory)
    broken = re.sub(rb"<uws:ownerId[^>]*?(/>|>.*?</uws:ownerId>)", b"", documents["completed job"])
    assert broken != documents["completed job"]
    assert errors(xsdvalidate(broken, tmp_path)), "xsdvalidate accepted a job without ownerId"
