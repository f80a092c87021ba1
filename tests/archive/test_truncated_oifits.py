"""A truncated or corrupt OIFITS file is one clear error naming the file and "truncated":
in the reader (``open_whole``, granules, observables), ``hcdc oi check``, ingest (the
quarantine reason) and ``hcdc oi validate``. Truncated copies of the real files are used."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from astropy.io import fits
from typer.testing import CliRunner

from hcdc.archive.ingest import ingest
from hcdc.cli import app
from hcdc.instruments.base import UnreadableFileError
from hcdc.instruments.fits_file import open_whole
from hcdc.instruments.oifits_data import read_observables
from hcdc.instruments.oifits_granules import granule_rows, read_granules

pytestmark = pytest.mark.shared_data

BLOCK = 2880


def _real(shared_data: Path) -> list[Path]:
    return sorted(p for p in (shared_data / "oifits" / "real").iterdir() if p.is_file())


def _cuts(path: Path) -> list[int]:
    """Cut points in every part of a file: inside the primary header's first block, inside
    each header, inside and at the last byte of each data section. A cut in a data section's
    padding is not among them: it is a valid file whose writer omitted the padding."""
    cuts = [749]
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            start, data, size = hdu._header_offset, hdu._data_offset, hdu._data_size
            cuts += [start + 100, data - 1]
            if size:
                cuts += [data + size // 2, data + size - 1]
    return sorted(set(cuts))


def test_every_cut_of_every_real_file_is_reported_as_truncated(shared_data: Path, tmp_path: Path) -> None:
    cut_file = tmp_path / "cut.fits"
    tried = 0
    for source in _real(shared_data):
        data = source.read_bytes()
        with open_whole(source) as hdul:  # the whole file reads
            assert len(hdul) > 1
        for cut in _cuts(source):
            cut_file.write_bytes(data[:cut])
            with pytest.raises(UnreadableFileError, match="truncated FITS file") as caught:
                with open_whole(cut_file):
                    pass
            assert str(caught.value).count("truncated") == 1, (source.name, cut, caught.value)
            tried += 1
    assert tried > 200


def test_a_cut_gzipped_file_is_truncated_too(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "oifits" / "real" / "PIONIER_alfCenA_2016-05-31.fits").read_bytes()
    whole = tmp_path / "whole.fits.gz"
    cut = tmp_path / "cut.fits.gz"
    whole.write_bytes(gzip.compress(data))
    cut.write_bytes(gzip.compress(data[:50000]))
    assert len(read_granules(whole)) == 1
    with pytest.raises(UnreadableFileError, match="truncated FITS file: the header of HDU #"):
        read_granules(cut)


def test_granule_and_observable_readers_refuse_a_cut_file(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "oifits" / "real" / "AMBER_SSLep_2009.fits").read_bytes()
    cut = tmp_path / "AMBER_cut.fits"
    cut.write_bytes(data[: len(data) - 640])  # inside the last table's data
    for reader in (read_granules, granule_rows):
        with pytest.raises(UnreadableFileError, match=r"truncated FITS file: HDU #\d+ \(OI_\w+\) needs"):
            reader(cut)
    # the fast raw reader cannot see the cut; the astropy fallback then names it (and the file)
    with pytest.raises(UnreadableFileError, match="AMBER_cut.fits: truncated FITS file"):
        read_observables(cut)


def test_oi_check_on_a_cut_file_is_one_error_and_a_failure(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "dc"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    data = (shared_data / "oifits" / "real" / "PIONIER_AXCir_merged.oifits").read_bytes()
    cases = {
        "head5000.fits": data[:5000],  # the primary complete, the next header cut
        "head749.fits": data[:749],  # inside the primary header's block
        "mid.fits": data[: len(data) // 2],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        result = CliRunner().invoke(app, ["oi", "check", str(path), "--root", str(root)])
        assert result.exit_code == 1, (name, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: truncated FITS file"), result.stderr
        assert "SEVERE" not in result.stdout and "WARNING" not in result.stderr
    # the whole file still checks
    whole = tmp_path / "whole.oifits"
    whole.write_bytes(data)
    result = CliRunner().invoke(app, ["oi", "check", str(whole), "--json", "--root", str(root)])
    assert result.exit_code == 0 and json.loads(result.stdout)["profile"] == "JMMC"


def test_ingest_quarantines_cut_files_as_truncated(catalogue, shared_data: Path, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    names = []
    for source in _real(shared_data)[:6]:
        data = source.read_bytes()
        (incoming / source.name).write_bytes(data[: len(data) - 1000])
        names.append(source.name)
    report = ingest(catalogue, sorted(incoming.iterdir()), workers=1)
    assert report.ingested == 0
    result = CliRunner().invoke(app, ["quarantine", "--json", "--root", str(catalogue.settings.root)])
    rows = json.loads(result.stdout)
    reasons = {Path(r["path"]).name: r for r in rows}
    assert sorted(reasons) == sorted(names)
    for name, row in reasons.items():
        assert row["reason_code"] == "unreadable"
        assert row["reason"].startswith(f"{incoming / name}: truncated FITS file"), row


def test_validate_names_a_cut_file_as_truncated(catalogue, shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "oifits" / "simulated" / "ASPRO2_CHARA_SPICA_zetOph.fits").read_bytes()
    cut = tmp_path / "spica_cut.fits"
    cut.write_bytes(data[:30000])
    result = CliRunner().invoke(
        app,
        [
            "oi",
            "validate",
            str(cut),
            "--quality",
            "4",
            "--comment",
            "ok",
            "--root",
            str(catalogue.settings.root),
        ],
    )
    assert result.exit_code == 1
    assert f"{cut}: truncated FITS file" in result.stderr and "not catalogued" in result.stderr
