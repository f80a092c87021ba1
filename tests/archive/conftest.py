"""Fixtures of the archive tests: data centres on SQLite and PostgreSQL, files from real headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from hcdc.archive.db import Catalogue, init_data_centre
from hcdc.archive.samples import write_fits
from hcdc.instruments.eso_headers import read_header_text


@pytest.fixture
def catalogue(tmp_path: Path, database_url: str) -> Catalogue:
    """A fresh data centre in tmp_path/dc whose catalogue is the ``database_url`` database."""
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def sphere_headers(shared_data: Path) -> dict[str, fits.Header]:
    """The eight real SPHERE IFS headers, by dataset identifier (file name without .hdr.txt)."""
    folder = shared_data / "sphere_headers"
    headers = {p.name.removesuffix(".hdr.txt"): read_header_text(p) for p in sorted(folder.glob("*.hdr.txt"))}
    assert len(headers) == 8
    return headers


@pytest.fixture
def sphere_files(tmp_path: Path, sphere_headers: dict[str, fits.Header]) -> dict[str, Path]:
    """One small FITS file per real header (real primary header, 4x4 data), by identifier."""
    folder = tmp_path / "raw"
    return {name: write_fits(folder / f"{name}.fits", header) for name, header in sphere_headers.items()}
