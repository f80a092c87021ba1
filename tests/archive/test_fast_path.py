"""Ingest's fast header path stores exactly what the astropy path stores.

``inspect_file`` (what every ingest worker runs) reads plain FITS files through
``registry.read_metadata``, which skips astropy's Header for standard primary headers. Here each
file is inspected twice, once as ingest does and once with ``read_metadata`` replaced by the
full astropy path (``read_file``), and every column value of the future files row is compared:
the normalized metadata, the extra JSON, the stored header card images, grouping keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits

import hcdc.archive.inspection as inspection_module
from hcdc.archive.ingest import Inspection, inspect_file
from hcdc.instruments.registry import read_file, read_metadata_fast


def _astropy_inspection(path: Path, monkeypatch: pytest.MonkeyPatch) -> Inspection:
    """``inspect_file`` with the fast path switched off (astropy reads every header)."""
    with monkeypatch.context() as patch:
        patch.setattr(inspection_module, "read_metadata", lambda p, content=None: read_file(p))
        return inspect_file(path)


def _assert_same_inspection(path: Path, monkeypatch: pytest.MonkeyPatch) -> Inspection:
    fast = inspect_file(path)
    slow = _astropy_inspection(path, monkeypatch)
    assert fast.error is None and slow.error is None, (fast.error, slow.error)
    assert (fast.sha256, fast.size, fast.mtime_ns) == (slow.sha256, slow.size, slow.mtime_ns)
    assert fast.values.keys() == slow.values.keys()
    for key, value in slow.values.items():
        assert fast.values[key] == value, key
    return fast


@pytest.mark.shared_data
def test_real_headers_same_rows(sphere_files, sphere_headers, monkeypatch):
    for name, path in sphere_files.items():
        assert read_metadata_fast(path) is not None, name  # the fast path decided
        fast = _assert_same_inspection(path, monkeypatch)
        # the stored card images are the file's header: astropy reads the same cards back
        stored = fits.Header.fromstring("".join(card.ljust(80) for card in json.loads(fast.values["header"])))
        header = fits.getheader(path)
        assert list(stored.items()) == list(header.items())
        assert header["ARCFILE"] == sphere_headers[name]["ARCFILE"]
        assert fast.values["instrument"] == "SPHERE"


@pytest.fixture(scope="module")
def irdis_night(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The simulated IRDIS night (scale 'small'): science sequences and calibrations."""
    from hcdc.instruments.sphere.irdis.simulate import simulate_irdis_night

    folder = tmp_path_factory.mktemp("irdis_night")
    night = simulate_irdis_night(folder, scale="small")
    return [Path(f.path) for f in night.files]


def test_simulated_irdis_night_same_rows(irdis_night, monkeypatch):
    classes = set()
    for path in irdis_night:
        assert read_metadata_fast(path) is not None, path.name
        fast = _assert_same_inspection(path, monkeypatch)
        classes.add(fast.values["file_class"])
    # the night holds science, star-centre, flux, sky and calibration frames
    assert {"SCIENCE", "CENTER", "FLUX", "DARK", "FLAT"} <= classes
