"""Calibration association persisted and reported, on a realistic night from real headers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from hcdc.archive.associations import associate_all, associate_dataset, association_view
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Association, Dataset, File, MissingCalibration

from .night import SCIENCE, build_night, specpos_file

IFS_YJ_FLAT_LAMPS = ("BB", "NB1", "NB2", "NB3")


def _ids_by_name(catalogue) -> dict[str, int]:
    with catalogue.engine.connect() as conn:
        return {Path(path).stem: file_id for file_id, path in conn.execute(select(File.id, File.path))}


def _night(catalogue, sphere_headers, tmp_path) -> tuple[dict[str, Path], int]:
    files = build_night(sphere_headers, tmp_path / "night")
    summary = ingest(catalogue, [tmp_path / "night"], workers=1)
    assert (summary.ingested, summary.quarantined) == (len(files), 0)
    with catalogue.engine.connect() as conn:
        dataset_ids = list(conn.scalars(select(Dataset.id)))
    assert len(dataset_ids) == 1  # the calibrations form no dataset
    return files, dataset_ids[0]


def test_night_association_is_stored_and_reported(catalogue, sphere_headers, tmp_path) -> None:
    files, dataset_id = _night(catalogue, sphere_headers, tmp_path)
    ids = _ids_by_name(catalogue)
    assert associate_all(catalogue.engine) == [dataset_id]
    with catalogue.engine.connect() as conn:
        view = association_view(conn, dataset_id)
        stored = conn.execute(select(Association.need, Association.calibration_file_id)).all()
    chosen = {item["need"]: item for item in view["chosen"]}
    # the IFS-YJ wavelength calibration, never the IFS-YJH one taken 3 minutes later
    assert chosen["wave"]["file_id"] == ids[files["wave_yj"].stem]
    assert ids[files["wave_yjh"].stem] not in {fid for _, fid in stored}
    # backgrounds: one per science DIT, the 64 s one from the same morning (not the next day)
    backgrounds = {need: item for need, item in chosen.items() if need.startswith("background")}
    assert {item["file_id"] for item in backgrounds.values()} == {ids["background_64"], ids["background_12"]}
    assert ids["background_64_next_day"] not in {fid for _, fid in stored}
    for item in backgrounds.values():
        assert item["kind"] == "BACKGROUND" and item["fallback"]  # no SKY in this night
        assert 2.0 < item["delta_hours"] < 2.5
    assert any("fallback" in w for w in view["warnings"])
    # the 1.65 s calibration dark
    assert chosen["calib_dark"]["file_id"] == ids["calib_dark"]
    # what the night lacks is reported, with reasons
    missing = {item["need"]: item["reason"] for item in view["missing"]}
    assert set(missing) == {"specpos", "ifu_flat", *(f"detector_flat:{lamp}" for lamp in IFS_YJ_FLAT_LAMPS)}
    assert "SPECPOS" in missing["specpos"]
    # science files never serve as calibrations
    science_ids = {ids[name] for name in SCIENCE}
    assert science_ids.isdisjoint(fid for _, fid in stored)


def test_reassociation_replaces_previous_rows(catalogue, sphere_headers, tmp_path) -> None:
    _, dataset_id = _night(catalogue, sphere_headers, tmp_path)
    associate_dataset(catalogue.engine, dataset_id)
    with catalogue.engine.connect() as conn:
        first = sorted(conn.execute(select(Association.need, Association.calibration_file_id)).all())
    associate_dataset(catalogue.engine, dataset_id)
    with catalogue.engine.connect() as conn:
        second = sorted(conn.execute(select(Association.need, Association.calibration_file_id)).all())
        n_missing = conn.scalar(select(func.count()).select_from(MissingCalibration))
    assert first == second and n_missing == 6
    # a SPECPOS frame arrives: re-association uses it and it is no longer missing
    ingest(catalogue, [specpos_file(sphere_headers, tmp_path / "later")], workers=1)
    report = associate_dataset(catalogue.engine, dataset_id)
    assert "specpos" in report.chosen and "specpos" not in report.missing
    with catalogue.engine.connect() as conn:
        view = association_view(conn, dataset_id)
        specpos_rows = conn.scalar(select(func.count()).where(Association.need == "specpos"))
    assert specpos_rows == 1
    assert "specpos" not in {m["need"] for m in view["missing"]}
    assert len(view["missing"]) == 5


def test_candidates_outside_the_window_are_not_considered(catalogue, sphere_headers, tmp_path) -> None:
    _, dataset_id = _night(catalogue, sphere_headers, tmp_path)
    # a zero-night window keeps only calibrations of the science night itself (2020-03-07):
    # the 64 s and 12 s backgrounds; the wave and calib dark (night 2020-03-08) are excluded
    report = associate_dataset(catalogue.engine, dataset_id, window_days=0)
    assert "wave" in report.missing and "calib_dark" in report.missing
    assert len([need for need in report.chosen if need.startswith("background")]) == 2
