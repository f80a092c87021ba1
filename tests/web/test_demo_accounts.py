"""The demo accounts of ``hcdc demo --serve``: created once, passwords kept private, the PI leads
the simulated programme and can sign in."""

from __future__ import annotations

from pathlib import Path

from hcdc.archive import accounts
from hcdc.archive.db import init_data_centre
from hcdc.web.demo import DEMO_PROGRAMME, demo_accounts


def test_demo_accounts_are_created_once(tmp_path: Path, sqlite_url: str) -> None:
    with init_data_centre(tmp_path / "dc", database_url=sqlite_url) as catalogue:
        first = demo_accounts(catalogue)
        again = demo_accounts(catalogue)
        assert first == again and [r[0] for r in first] == ["public", "pi", "admin"]
        secrets_file = tmp_path / "dc" / "demo-accounts.txt"
        assert secrets_file.stat().st_mode & 0o077 == 0
        pi_password = dict(first_row[::2] for first_row in first)["pi"]
        with catalogue.engine.begin() as conn:
            assert accounts.authenticate_password(conn, "pi", pi_password).name == "pi"
            programmes = {p["prog_id"]: p for p in accounts.list_programmes(conn)}
        assert programmes[DEMO_PROGRAMME]["pi"] == "pi"
