"""The accounts of the demo data centre (``hcdc demo DIR --serve``): an admin and the PI of the
simulated programme, with random passwords kept in ``DIR/demo-accounts.txt`` (mode 0600); the
public account needs none (anonymous visitors are the public account)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hcdc.archive import accounts
from hcdc.archive.access import local_operator
from hcdc.archive.db import Catalogue, write_transaction

#: the programme of the simulated nights (hcdc.instruments.sphere.irdis.simulate), registered without
#: run letter
DEMO_PROGRAMME = "0102.C-9999"
ACCOUNTS_FILE = "demo-accounts.txt"


def demo_accounts(catalogue: Catalogue) -> list[tuple[str, str, str]]:
    """Create (once) the demo accounts; returns ``(name, role, password or note)`` to print."""
    path = Path(catalogue.settings.root) / ACCOUNTS_FILE
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, password = line.partition(" ")
            known[name] = password
    operator = local_operator()
    created = []
    with write_transaction(catalogue.engine) as conn:
        existing = {u["name"] for u in accounts.list_users(conn)}
        for name, role in (("admin", "admin"), ("pi", "user")):
            if name not in existing:
                password = secrets.token_urlsafe(9)
                accounts.add_user(
                    conn, operator, name, role=role, password=password, full_name=f"demo {name}"
                )
                known[name] = password
                created.append(name)
        programmes = {p["prog_id"] for p in accounts.list_programmes(conn)}
        if DEMO_PROGRAMME not in programmes:
            accounts.save_programme(
                conn, operator, accounts.ProgrammeSpec(DEMO_PROGRAMME, pi="pi", title="hcdc demo: 51 Eri")
            )
    if created:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{n} {p}\n" for n, p in known.items()))
    return [
        ("public", "public", "(no password: browse without signing in)"),
        ("pi", f"PI of {DEMO_PROGRAMME}", known.get("pi", "(password set elsewhere)")),
        ("admin", "admin", known.get("admin", "(password set elsewhere)")),
    ]


__all__ = ["DEMO_PROGRAMME", "demo_accounts"]
