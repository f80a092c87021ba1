"""Ingest of Unix ``compress`` (.fits.Z) files, as ESO archive downloads arrive (SQLite and PostgreSQL).

The .fits.Z files are written by the test helper :mod:`helpers.unix_compress` from FITS files
carrying the real SPHERE headers (see tests/instruments/test_fits_z.py for the helper's checks).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from helpers.unix_compress import compress
from sqlalchemy import select

from hcdc.archive.ingest import UNREADABLE, ingest
from hcdc.archive.models import File, QuarantinedFile
from hcdc.archive.samples import write_fits
from hcdc.instruments.registry import read_file


def _pack(plain: Path) -> Path:
    """Replace ``plain`` by its .Z version (the plain file is kept elsewhere by the caller)."""
    packed = plain.with_name(plain.name + ".Z")
    packed.write_bytes(compress(plain.read_bytes()))
    return packed


def test_fits_z_is_catalogued_with_its_metadata(catalogue, sphere_headers, tmp_path) -> None:
    names = sorted(sphere_headers)
    folder = tmp_path / "download"
    reference = tmp_path / "reference"  # the same files uncompressed, outside the ingested folder
    packed: dict[str, Path] = {}
    for name in names[:3]:
        plain = write_fits(reference / f"{name}.fits", sphere_headers[name], shape=(16, 16), fill=3.5)
        target = folder / plain.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(plain.read_bytes())
        packed[name] = _pack(target)
        target.unlink()
    also_plain = write_fits(folder / f"{names[3]}.fits", sphere_headers[names[3]])  # a mixed folder

    summary = ingest(catalogue, [folder], workers=1)
    assert (summary.discovered, summary.ingested, summary.quarantined) == (4, 4, 0)

    with catalogue.engine.connect() as conn:
        rows = {Path(r.path).name: r for r in conn.execute(select(File)).all()}
    assert set(rows) == {p.name for p in packed.values()} | {also_plain.name}
    for name, path in packed.items():
        row = rows[path.name]
        blob = path.read_bytes()
        assert blob[:2] == b"\x1f\x9d"
        # the catalogue identifies the bytes on disk: the compressed ones
        assert row.sha256 == hashlib.sha256(blob).hexdigest()
        assert row.size == len(blob)
        assert row.stored_path == str(path)
        expected, header = read_file(reference / f"{name}.fits")
        assert (row.instrument, row.arm, row.category, row.type, row.technique) == (
            "SPHERE",
            "IFS",
            header["HIERARCH ESO DPR CATG"],
            header["HIERARCH ESO DPR TYPE"],
            header["HIERARCH ESO DPR TECH"],
        )
        for column in ("date_obs", "mjd_obs", "night", "dit", "ndit", "filter", "coronagraph"):
            assert getattr(row, column) == getattr(expected, column), column
        for column in ("target", "ra", "dec", "prog_id", "ob_id", "tpl_start", "airmass", "seeing"):
            assert getattr(row, column) == getattr(expected, column), column
        # the full primary header is kept, card by card (rendered by astropy for .Z files)
        assert row.header == [str(card).rstrip() for card in header.cards]
        assert any(card.startswith("HIERARCH ESO DPR TYPE") for card in row.header)

    # the same bytes again: nothing new
    again = ingest(catalogue, [folder], workers=1)
    assert (again.ingested, again.duplicates, again.quarantined) == (0, 4, 0)


def test_truncated_fits_z_is_quarantined(catalogue, sphere_headers, tmp_path) -> None:
    name = sorted(sphere_headers)[0]
    folder = tmp_path / "download"
    packed = _pack(write_fits(folder / f"{name}.fits", sphere_headers[name]))
    (folder / f"{name}.fits").unlink()
    blob = packed.read_bytes()
    broken = folder / "broken.fits.Z"
    broken.write_bytes(blob[: len(blob) // 5])  # cut inside the primary header

    summary = ingest(catalogue, [folder], workers=1)
    assert (summary.ingested, summary.quarantined) == (1, 1)
    with catalogue.engine.connect() as conn:
        (row,) = conn.execute(select(QuarantinedFile)).all()
    assert row.path == str(broken)
    assert row.reason_code == UNREADABLE
    assert row.reason.startswith(str(broken)) and "not a readable FITS file" in row.reason
    assert row.sha256 == hashlib.sha256(broken.read_bytes()).hexdigest()
