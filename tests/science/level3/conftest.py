"""Helpers for the Level 3 science tests: the real host stars of ../shared/data/level3/hosts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hcdc.science.level3.background import HostStar


@pytest.fixture(scope="session")
def bound_files() -> dict[str, str]:
    """bound/ file -> its host's name in hosts.csv."""
    return BOUND_FILES


BOUND_FILES = {
    "orbitize_betaPic.csv": "beta Pic",
    "orbitize_GJ504.csv": "GJ 504",
    "orbitize_hd206893b.csv": "HD 206893",
    "orbitize_hr8799e_1epochgravity.csv": "HR 8799",
    "51eri_b_derosa2020_table2.csv": "51 Eri",
    "hr8799_bc_octofitter_docs.csv": "HR 8799",
}


@pytest.fixture(scope="session")
def gaia_hosts(level3: Path) -> dict[str, HostStar]:
    """The Gaia DR3 rows of hosts.csv that have a position and proper motion, by host name."""
    hosts = {}
    with open(level3 / "hosts" / "hosts.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if not row["catalogue"].startswith("Gaia DR3") or not row["pmra_masyr"]:
                continue
            hosts[row["host"]] = HostStar(
                float(row["ra_deg"]),
                float(row["dec_deg"]),
                float(row["pmra_masyr"]),
                float(row["pmdec_masyr"]),
                float(row["plx_mas"]),
                parallax_err=float(row["plx_err_mas"] or 0.0),
                name=row["host"],
            )
    return hosts


@pytest.fixture(scope="session")
def level3(shared_data: Path) -> Path:
    path = shared_data / "level3"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
