"""Issue 10: 'hcdc init' never replaces a data centre's configuration or catalogue; secrets are
kept out of hcdc.toml; a missing or replaced storage root is detected."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers.hostile import hierarch, irdis_cards, raw_fits
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from hcdc.archive.db import (
    DataCentreConfigError,
    StorageMissingError,
    init_data_centre,
    open_data_centre,
)
from hcdc.archive.ingest import ingest
from hcdc.archive.marker import MARKER_NAME
from hcdc.archive.models import File
from hcdc.cli import app
from hcdc.config import CONFIG_FILENAME, PASSWORD_ENV, SECRET_FILENAME, load_settings


def _files(catalogue) -> int:
    with catalogue.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(File))


@pytest.fixture
def populated(tmp_path: Path, database_url: str) -> Path:
    """A data centre (SQLite or PostgreSQL, storage elsewhere) holding 3 copied files."""
    root = tmp_path / "dc"
    with init_data_centre(root, database_url=database_url, storage_root=tmp_path / "store") as cat:
        paths = [
            raw_fits(tmp_path / "raw" / f"f{i}.fits", irdis_cards(**{hierarch("OBS ID"): str(i)}))
            for i in range(3)
        ]
        ingest(cat, paths, copy=True, workers=1)
        assert _files(cat) == 3
    return root


def test_init_again_keeps_the_configuration_and_the_catalogue(populated: Path, database_url: str) -> None:
    config = (populated / CONFIG_FILENAME).read_text()
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(populated)])  # the documented upgrade command
    assert result.exit_code == 0, result.stderr
    assert (populated / CONFIG_FILENAME).read_text() == config  # not rewritten
    with open_data_centre(populated) as cat:
        assert make_url(cat.settings.resolved_database_url) == make_url(database_url)
        assert cat.storage_root == populated.parent / "store"
        assert _files(cat) == 3  # still the same catalogue


def test_init_does_not_change_the_database_or_the_storage(populated: Path, tmp_path: Path) -> None:
    with pytest.raises(DataCentreConfigError, match="does not change it"):
        init_data_centre(populated, database_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    with pytest.raises(DataCentreConfigError, match="does not change it"):
        init_data_centre(populated, storage_root=tmp_path / "elsewhere")
    assert not (tmp_path / "other.sqlite").exists() and not (tmp_path / "elsewhere").exists()
    with open_data_centre(populated) as cat:
        assert _files(cat) == 3


def test_broken_configuration_is_an_error_never_overwritten(populated: Path) -> None:
    broken = '[hcdc]\ndatabase_url = "postgresql+psycopg://db/x\n'  # unterminated string
    (populated / CONFIG_FILENAME).write_text(broken)
    runner = CliRunner()
    for command in (["init", str(populated)], ["files", "--root", str(populated)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1 and "cannot read the configuration" in result.stderr, command
        assert str(populated / CONFIG_FILENAME) in result.stderr
    assert (populated / CONFIG_FILENAME).read_text() == broken


def test_init_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}")
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(folder)])
    assert result.exit_code == 1 and "--force" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]  # nothing mixed in
    result = runner.invoke(app, ["init", str(folder), "--force"])
    assert result.exit_code == 0, result.stderr
    assert (folder / CONFIG_FILENAME).is_file() and (folder / "thesis.tex").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["init", str(empty)]).exit_code == 0  # an empty folder is fine


def test_a_data_centre_made_before_ids_gets_one_on_init(tmp_path: Path) -> None:
    root = tmp_path / "old"
    init_data_centre(root).close()
    # what hcdc wrote before issue 10: no id, no storage marker; the operator's comment is kept
    (root / CONFIG_FILENAME).write_text("# my data centre\n[hcdc]\nworkers = 2\n")
    (root / "storage" / MARKER_NAME).unlink()
    with open_data_centre(root) as cat:  # still opens (nothing to check against)
        assert cat.settings.id == ""
    init_data_centre(root).close()
    text = (root / CONFIG_FILENAME).read_text()
    assert text.startswith("# my data centre\n[hcdc]\n") and "workers = 2" in text
    settings = load_settings(root)
    assert settings.id and settings.workers == 2
    assert (root / "storage" / MARKER_NAME).is_file()


def test_a_missing_storage_root_is_detected(populated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.rename(tmp_path / "store-unmounted")
    with pytest.raises(StorageMissingError, match="is missing"):
        open_data_centre(populated)
    runner = CliRunner()
    raw = raw_fits(tmp_path / "new" / "n.fits", irdis_cards(**{hierarch("OBS ID"): "99"}))
    result = runner.invoke(app, ["ingest", str(raw), "--copy", "--root", str(populated)])
    assert result.exit_code == 1 and "storage root" in result.stderr and "missing" in result.stderr
    assert not store.exists()  # no new, empty store was created in its place
    with pytest.raises(StorageMissingError):
        init_data_centre(populated)  # nor by init
    assert not store.exists()


def test_a_replaced_storage_root_is_detected(populated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.rename(tmp_path / "store-old")
    store.mkdir()  # an empty folder where the store was
    with pytest.raises(StorageMissingError, match="no .hcdc-storage marker"):
        open_data_centre(populated)
    store.rmdir()
    init_data_centre(tmp_path / "other", storage_root=store).close()  # another data centre's store
    with pytest.raises(StorageMissingError, match="is the storage root of data centre"):
        open_data_centre(populated)


def test_database_password_is_kept_out_of_hcdc_toml(tmp_path: Path, postgres_url: str) -> None:
    url = make_url(postgres_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    root = tmp_path / "dc"
    init_data_centre(root, database_url=url).close()  # the test server trusts: any password works
    config = (root / CONFIG_FILENAME).read_text()
    assert "s3cret-pw" not in config and "database_password_file" in config
    secret = root / SECRET_FILENAME
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() == "s3cret-pw"
    with open_data_centre(root) as cat:
        assert make_url(cat.settings.resolved_database_url).password == "s3cret-pw"
    # the environment wins over the file
    os.environ[PASSWORD_ENV] = "from-env"
    try:
        assert make_url(load_settings(root).resolved_database_url).password == "from-env"
    finally:
        del os.environ[PASSWORD_ENV]
    # a password file others can read is refused, with the fix in the message
    secret.chmod(0o644)
    with pytest.raises(DataCentreConfigError, match="chmod 600"):
        open_data_centre(root)


def test_a_password_in_a_readable_hcdc_toml_is_warned_about(tmp_path: Path) -> None:
    root = tmp_path / "dc"
    init_data_centre(root).close()
    text = (root / CONFIG_FILENAME).read_text()
    (root / CONFIG_FILENAME).write_text(text + 'database_url = "postgresql+psycopg://u:pw@127.0.0.1:1/x"\n')
    (root / CONFIG_FILENAME).chmod(0o644)
    with pytest.warns(UserWarning, match="password in clear"):
        load_settings(root)
    (root / CONFIG_FILENAME).chmod(0o600)
    load_settings(root)  # private file: no warning (pytest's filterwarnings would not catch it)
