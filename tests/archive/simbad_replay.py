"""A local SIMBAD TAP replay server for the resolver tests (a real HTTP server on 127.0.0.1).

pyvo sends ``POST <endpoint>/sync`` with ``REQUEST=doQuery, LANG=ADQL, QUERY=...``; the server reads
the ADQL, recognises the two queries of :mod:`hcdc.archive.simbad` (object / identifiers) and the
name in ``... .id = '<name>'``, and answers with the stored real SIMBAD response registered for
that (query kind, normalised name):

* the VOTable of the ``::data::`` section of an archived SIMBAD answer (byte for byte), e.g.
  ``astroquery_legacy_script/m1.data`` for ``M 1``;
* a ``%IDLIST`` text answer (``query_objectids.data``: Polaris' 45 identifiers) is served as a
  one-column TAP VOTable (``id``, UCD ``meta.id``), since TAP answers are VOTables;
* any other name gets an empty result table (what SIMBAD TAP answers for an unknown identifier).

``requests`` records every ADQL query received, so a test can check what was (not) asked.
"""

from __future__ import annotations

import io
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from astropy.io.votable import from_table, writeto
from astropy.table import Table

from hcdc.archive.targets import normalize_name


def data_section(path: Path) -> bytes:
    """The bytes after the ``::data::`` line of an archived SIMBAD script answer."""
    raw = path.read_bytes()
    marker = raw.index(b"::data::")
    return raw[raw.index(b"\n", marker) + 1 :].lstrip()


def _votable(table: Table) -> bytes:
    buffer = io.BytesIO()
    writeto(from_table(table), buffer)
    return buffer.getvalue()


def identifiers_votable(lines: list[str]) -> bytes:
    table = Table({"id": [line for line in lines if line.strip()]})
    table["id"].meta["ucd"] = "meta.id"
    return _votable(table)


def empty_object_votable() -> bytes:
    table = Table({"main_id": ["x"], "ra": [0.0], "dec": [0.0]})[:0]
    table["main_id"].meta["ucd"] = "meta.id;meta.main"
    table["ra"].unit, table["dec"].unit = "deg", "deg"
    return _votable(table)


class SimbadReplay:
    """Start with ``with SimbadReplay(answers) as server:``; ``server.url`` is the TAP endpoint."""

    def __init__(self, answers: dict[tuple[str, str], bytes]) -> None:
        self.answers = {(kind, normalize_name(name)): body for (kind, name), body in answers.items()}
        self.requests: list[str] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                query = form.get("QUERY", [""])[0]
                replay.requests.append(query)
                self._send(replay.answer(query))

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-votable+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/simbad/sim-tap"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, query: str) -> bytes:
        kind = "identifiers" if " AS others " in query else "object"
        match = re.search(r"\.id = '((?:[^']|'')*)'", query)
        name = match.group(1).replace("''", "'") if match else ""
        body = self.answers.get((kind, normalize_name(name)))
        if body is not None:
            return body
        return empty_object_votable() if kind == "object" else identifiers_votable([])

    def __enter__(self) -> SimbadReplay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
