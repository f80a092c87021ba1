"""The account and rights commands on a data centre holding the realistic night built from the
real SPHERE headers (programme 0104.C-0007(B), observed 2020-03-08), SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcdc.archive.accounts import authenticate_token
from hcdc.archive.db import open_data_centre
from hcdc.cli import app

from .access_world import add_product
from .night import build_night


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "240"})


def _ok(result) -> str:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture
def centre(runner: CliRunner, tmp_path: Path, database_url: str, sphere_headers) -> Path:
    root = tmp_path / "dc"
    args = ["init", str(root)] + ([] if database_url.startswith("sqlite") else ["--database", database_url])
    _ok(runner.invoke(app, args))
    build_night(sphere_headers, tmp_path / "night")
    _ok(runner.invoke(app, ["ingest", str(tmp_path / "night"), "--root", str(root), "--workers", "1"]))
    return root


@pytest.mark.shared_data
def test_accounts_and_rights_on_the_real_night(runner: CliRunner, centre: Path, tmp_path: Path) -> None:
    root = ["--root", str(centre)]

    def run(*args: str, input: str | None = None) -> str:
        return _ok(runner.invoke(app, [*args, *root], input=input))

    def js(*args: str):
        return json.loads(run(*args, "--json"))

    def fails(*args: str) -> str:
        result = runner.invoke(app, [*args, *root])
        assert result.exit_code == 1, result.stdout + result.stderr
        return result.stderr

    run("user", "add", "alice", "--password-stdin", "--full-name", "Alice PI", input="a long passphrase\n")
    run("user", "add", "bob")
    run("user", "add", "carol")
    run("user", "add", "ops", "--role", "operator")
    run("programme", "add", "0104.C-0007(B)", "--pi", "alice", "--coi", "bob")
    users = {u["name"]: u for u in js("user", "list")}
    assert users["alice"]["pi_of"] == ["0104.C-0007"] and users["alice"]["password"]
    assert users["bob"]["coi_of"] == ["0104.C-0007"] and not users["bob"]["password"]

    files = {f["id"]: f for f in js("files")}  # the shell's operator sees all 12 files
    assert len(files) == 12
    science = next(i for i, f in files.items() if f["type"] == "OBJECT")
    wave = next(i for i, f in files.items() if f["type"] == "WAVE,LAMP")

    def can_see(user: str, obj: str, at: str) -> tuple[bool, str]:
        d = js("user", "can-see", user, obj, "--at", at)
        return d["allowed"], d["rule"]

    # raw data of 2020-03-08 belong to the PI and co-I for 12 months; calibrations are public
    assert can_see("anonymous", f"f{science}", "2020-06-01") == (False, "R9")
    assert can_see("alice", f"f{science}", "2020-06-01") == (True, "R5")
    assert can_see("bob", f"f{science}", "2020-06-01") == (True, "R5")
    assert can_see("carol", f"f{science}", "2020-06-01") == (False, "R9")
    assert can_see("public", f"f{wave}", "2020-03-09") == (True, "R2")
    assert can_see("anonymous", f"f{science}", "2021-03-09") == (True, "R3")
    # the dataset is public once its last file (07:48 UTC) is: 2020-03-08T07:48 + 365.25 days
    assert can_see("anonymous", "d1", "2021-03-08T13:00") == (False, "R9")
    assert can_see("anonymous", "d1", "2021-03-08T14:00") == (True, "R3")

    # delegation by the PI only; the audit log names who did it
    assert "A2" in fails("delegate", "grant", "carol", "--dataset", "1", "--as", "bob")
    grant = js("delegate", "grant", "carol", "--dataset", "1", "--as", "alice", "--reason", "thesis")
    assert can_see("carol", f"f{science}", "2020-06-01") == (True, "R7")
    run("delegate", "revoke", str(grant["id"]), "--as", "alice")
    assert [d["state"] for d in js("delegate", "list")] == ["revoked"]

    # a product of the dataset: public a year after the raw data; the PI delays it
    with open_data_centre(centre) as catalogue, catalogue.engine.begin() as conn:
        product = add_product(conn, 1)
    window = js(
        "release", "delay", f"p{product}", "--until", "2022-09-01", "--reason", "paper", "--as", "alice"
    )
    assert window["scheduled"].startswith("2022-03-08")
    assert "at most" in fails("release", "delay", str(product), "--until", "2030-01-01", "--reason", "x")
    shown = js("release", "show", str(product))
    assert shown["public_date"].startswith("2022-09-01") and shown["public_now"]
    assert "--reason" in runner.invoke(app, ["review", "flag", str(product), *root]).stderr
    run("review", "flag", str(product), "--reason", "bad centring", "--as", "ops")
    assert js("release", "show", str(product))["review"] == "flagged"
    assert "A4" in fails("review", "validate", str(product), "--as", "alice")

    # tokens: printed once, stored hashed, revocable
    secret = run("user", "token", "bob", "--label", "laptop").splitlines()[0]
    with open_data_centre(centre) as catalogue, catalogue.engine.begin() as conn:
        assert authenticate_token(conn, secret).name == "bob"
    run("user", "revoke-token", secret)
    with open_data_centre(centre) as catalogue, catalogue.engine.begin() as conn:
        assert authenticate_token(conn, secret) is None

    # CSV import: all or nothing, errors name the file and the line
    bad = tmp_path / "programmes.csv"
    bad.write_text("prog_id,pi,cois\n0110.C-0001,alice,\n0111.C-0002,ghost,\n")
    assert "programmes.csv, programme 2 (0111.C-0002): no user called 'ghost'" in fails(
        "programme", "import", str(bad)
    )
    assert [p["prog_id"] for p in js("programme", "list")] == ["0104.C-0007"]
    bad.write_text("prog_id,pi,cois,period_months\n0110.C-0001,alice,bob;carol,6\n")
    assert js("programme", "import", str(bad))["programmes"] == ["0110.C-0001"]

    actions = [a["action"] for a in js("audit", "--limit", "100")]
    for expected in ("user.add", "programme.add", "delegation.grant", "delegation.revoke", "release.delay"):
        assert expected in actions
    assert {"product.flag", "token.create", "token.revoke", "programme.import"} <= set(actions)
    assert "exists already" in fails("user", "add", "bob")
