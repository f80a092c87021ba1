"""The VOTable writer (hcdc.web.vo.votable): read back by astropy, accepted by STILTS votlint."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import shutil
import subprocess

import pytest
from astropy.io.votable import parse

from hcdc.web.vo.votable import Field, csv_document, error_document, json_document, votable_document

from .vo_tools import votlint

FIELDS = [
    Field("name", "char", "*", ucd="meta.id"),
    Field("ra", "double", unit="deg", ucd="pos.eq.ra"),
    Field("n", "long"),
    Field("level", "short"),
    Field("when", "char", "*", xtype="timestamp"),
]
ROWS = [
    ("51 Eri <b>", 69.4, 3, 2, dt.datetime(2026, 1, 10, 3, 4, 5, 678000)),
    (None, None, None, None, None),
    ("béta Pic", math.nan, -(2**40), 0, dt.datetime(2020, 1, 1)),
]


@pytest.mark.parametrize("serialization", ["binary2", "tabledata"])
def test_both_serializations_read_back(serialization) -> None:
    doc = votable_document(FIELDS, ROWS, serialization=serialization, overflow=True)
    table = parse(io.BytesIO(doc)).get_first_table().to_table()
    assert list(table.colnames) == ["name", "ra", "n", "level", "when"]
    assert table["name"][0] == "51 Eri <b>" and table["name"][2] == "b?ta Pic"
    assert table["ra"][0] == 69.4 and table["ra"].mask[1] and table["n"][2] == -(2**40)
    assert table["n"].mask[1] and table["when"][0] == "2026-01-10T03:04:05.678"
    text = doc.decode()
    # QUERY_STATUS=OK before the table, OVERFLOW after it (TAP 1.1 §4.9 / DALI)
    assert text.index('value="OK"') < text.index("<TABLE") < text.index('value="OVERFLOW"')
    votlint(doc)


def test_error_document() -> None:
    doc = error_document("syntax error at 'DUFF'")
    text = doc.decode()
    assert 'name="QUERY_STATUS" value="ERROR"' in text and "DUFF" in text and "<TABLE" not in text
    votlint(doc)


def test_csv_and_json() -> None:
    lines = csv_document(FIELDS, ROWS).decode().splitlines()
    assert lines[0] == "name,ra,n,level,when" and lines[1].startswith(
        "51 Eri <b>,69.4,3,2,2026-01-10T03:04:05"
    )
    data = json.loads(json_document(FIELDS, ROWS, overflow=True))
    assert data["overflow"] and data["data"][1] == [None] * 5 and data["columns"][1]["unit"] == "deg"


def test_votlint_is_strict() -> None:
    """votlint catches what the writer must never do (a char timestamp with a fixed width...)."""
    if shutil.which("stilts") is None:
        pytest.skip("stilts absent")
    bad = votable_document([Field("x", "double", xtype="timestamp")], [(1.0,)])
    with pytest.raises(AssertionError):
        votlint(bad)
    assert subprocess.run(["stilts", "-version"], capture_output=True).returncode == 0
