"""RDI reference libraries from the archive (issue 15), with a known answer.

A simulated night of five stars observed with the same IRDIS set-up (DB_H23, DBI, 16 s DITs) and
the same instrument speckles (``speckle_seed``), each with its own noise; the first star has a
companion at 200 mas (5 lambda/D) and the sequence rotates by only 3.4 deg, so ADI subtracts
most of it. The library built from the other four stars' Level 1 products recovers the companion
with RDI at a much higher S/N than ADI (measured and asserted), through the ``l2-rdi`` recipe
too; the library is built only from the products the account may see (rule R18) and hidden from
those who may not see all its sources. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from hcdc.archive import accounts
from hcdc.archive import products as prod
from hcdc.archive.access import AccessContext, load_principal, local_operator
from hcdc.archive.associations import associate_all
from hcdc.archive.catalogue import NotFound, UserCatalogue
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.archive.rdi_library import LibrarySettings
from hcdc.cli import app
from hcdc.instruments.registry import read_level1
from hcdc.pipeline.registry import run_recipe
from hcdc.science.orientation import rotation_from_derotation
from hcdc.science.postprocessing import get_algorithm, snr

SEP_MAS, PA_DEG, CONTRAST = 200.0, 40.0, 3e-4  # 16 px at 12.25 mas/px
TARGETS = (
    ("HD 1", 70.0, -2.5),
    ("HD 2", 75.0, -10.0),
    ("HD 3", 80.0, 5.0),
    ("HD 4", 65.0, -20.0),
    ("HD 5", 85.0, -30.0),
)
CONDITION_NAMES = ("SEEING", "TAU0", "STREHL", "WIND", "AIRMASS")
HIDDEN = "HD 3"  # its programme keeps its data private for 100 years
ADMIN = local_operator()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Raw files of the five stars and their Level 1 products (reduced once, outside any catalogue)."""
    from hcdc.instruments.sphere.irdis.simulate import Companion, SequenceSpec, Target, simulate_irdis_night

    out = tmp_path_factory.mktemp("rdi_night")
    sequence = (SequenceSpec("DB_H23", "DBI", 16.0, 6, 16.0, 4.0, "ND_2.0", "x"),)
    raw_dirs, level1, seeds = [], {}, []
    for i, (name, ra, dec) in enumerate(TARGETS):
        sim = simulate_irdis_night(
            out / f"raw{i}",
            seed=100 + i,
            sequences=sequence,
            target=Target(name, ra, dec),
            companions=(Companion(SEP_MAS, PA_DEG, CONTRAST),) if i == 0 else (),
            speckle_seed=4242,  # one instrument: the same speckles for every star
            night=f"2018-11-{20 + i}",
        )
        raw_dirs.append(sim.out_dir)
        seeds.append(sim.speckle_seed)
        result = run_recipe(
            "level1-irdis",
            {"raw": sorted(f.path for f in sim.files)},
            ["science_dim=64", "psf_dim=16"],
            work_dir=out / f"l1_{i}",
        )
        level1[name] = (result.outputs["product"], result.outputs["summary"])
    assert seeds == [4242] * len(TARGETS)  # one instrument: the speckle field is the given one
    return {"raw": raw_dirs, "level1": level1}


def _make_centre(night, database_url: str, root: Path, conditions: dict | None = None):
    """A data centre holding the five nights and the five Level 1 products (one per dataset);
    ``conditions``: target -> (seeing arcsec, tau0 s, Strehl[, wind m/s, airmass]) written in
    every ``CONDITIONS`` row of that product (the simulated nights have no SPARTA files: the rows
    are NaN but for the airmass, computed from the pointing)."""
    from astropy.io import fits

    catalogue = init_data_centre(root / "dc", database_url=database_url)
    for raw in night["raw"]:
        assert ingest(catalogue, [raw], workers=1).quarantined == 0
    associate_all(catalogue.engine)
    with catalogue.engine.begin() as conn:
        # the catalogue writes targets without blanks (HD1)
        by_target = {r.target: r.id for r in conn.execute(select(Dataset.id, Dataset.target))}
        datasets = {name: by_target[name.replace(" ", "")] for name, _, _ in TARGETS}
        accounts.add_user(conn, ADMIN, "alice", role="user")
        accounts.save_programme(conn, ADMIN, accounts.ProgrammeSpec("0199.C-9999", period_months=1200))
        conn.execute(update(Dataset).where(Dataset.id == datasets[HIDDEN]).values(prog_id="0199.C-9999(A)"))
    specs = []
    for name, (folder, summary) in night["level1"].items():
        dest = catalogue.storage_root / "products" / name.replace(" ", "_") / "level1"
        shutil.copytree(folder, dest)
        if conditions is not None:
            with fits.open(dest / "frames.fits", mode="update") as hdul:
                # the table is there, NaN without telemetry: its rows get the given conditions
                table = hdul["CONDITIONS"].data
                values = conditions[name]
                for column, value in zip(CONDITION_NAMES[: len(values)], values, strict=True):
                    table[column][:] = value
        record = {"id": f"l1-{name}", "recipe": "level1-irdis", "recipe_version": "1.1", "parents": []}
        specs.append(
            prod.ProductSpec(
                lineage=prod.dataset_lineage(datasets[name], "level1-cube"),
                recipe="level1-irdis",
                recipe_version="1.1",
                record=record,
                storage_dir=dest,
                files=[prod.FileSpec(p, "product") for p in sorted(dest.rglob("*")) if p.is_file()],
                level=1,
                product_type="level1-cube",
                dataset_id=datasets[name],
                target=name,
                summary=summary,
            )
        )
    ids = prod.register_products(catalogue.engine, specs, catalogue.storage_root)
    return catalogue, dict(zip(night["level1"], ids, strict=True))


@pytest.fixture(scope="module")
def centre(night, module_database_url, tmp_path_factory):
    """A data centre holding the five nights and the five Level 1 products (one per dataset)."""
    catalogue, products = _make_centre(night, module_database_url, tmp_path_factory.mktemp("rdi_dc"))
    yield catalogue, products
    catalogue.engine.dispose()


def test_level1_frames_reads_the_cube_and_conditions_as_read_level1(night):
    """The cheap reader of library candidates gives read_level1's cube and conditions columns."""
    from hcdc.instruments.registry import read_level1_frames

    folder = night["level1"]["HD 2"][0]
    full, fast = read_level1(folder), read_level1_frames(folder)
    np.testing.assert_array_equal(np.asarray(fast.cube), full.cube)
    assert set(fast.conditions) == set(full.conditions.colnames)
    np.testing.assert_array_equal(fast.conditions["MJD"], np.asarray(full.conditions["MJD"]))
    assert fast.conditions["NO_TELEMETRY"].all()  # these nights have no SPARTA files
    assert read_level1_frames(folder, conditions=False).conditions is None
    with pytest.raises(ValueError, match="not a Level 1 product"):
        read_level1_frames(folder.parent)


def _user_catalogue(catalogue, name: str | None):
    conn = catalogue.engine.connect()
    user = load_principal(conn, name) if name else ADMIN
    return conn, UserCatalogue(conn, catalogue.storage_root, AccessContext(conn, user), catalogue.engine)


def _companion_xy(n: int, pixel_scale_mas: float) -> tuple[float, float]:
    sep = SEP_MAS / pixel_scale_mas
    c = n // 2
    return c - sep * np.sin(np.radians(PA_DEG)), c + sep * np.cos(np.radians(PA_DEG))


def test_library_from_the_archive_beats_adi_on_a_close_companion(centre, tmp_path):
    catalogue, products = centre
    conn, cat = _user_catalogue(catalogue, None)  # the operator: every product (R1)
    try:
        lib = cat.rdi.build(products["HD 1"], name="hd1-all", settings=LibrarySettings(max_frames=40))
        # the same set-up, other targets only: frames from all four other stars, best first
        assert lib["filter"] == "DB_H23" and lib["n_frames"] == 40
        assert {f["product_id"] for f in lib["frames"]} <= {products[t] for t in products if t != "HD 1"}
        assert products["HD 1"] not in {f["product_id"] for f in lib["frames"]}
        corr = [f["correlation"] for f in lib["frames"]]
        assert corr == sorted(corr, reverse=True) and corr[-1] > 0.5
        assert lib["record"]["candidate_frames"] == 4 * 18 and lib["record"]["rejected_products"] == {}
        assert {s["product_id"] for s in lib["record"]["source_products"]} == {
            f["product_id"] for f in lib["frames"]
        }
        path, summary = cat.rdi.file("hd1-all")
        assert summary["sha256"] == lib["sha256"]
        assert "hd1-all" in {x["name"] for x in cat.rdi.list()}
    finally:
        conn.close()

    # the known answer: S/N of the companion, ADI (PCA, annular PCA) against RDI with the library
    from astropy.io import fits

    science = read_level1(catalogue.storage_root / "products" / "HD_1" / "level1")
    # Level 1 DEROT in the vlt-sphere sense (ROTSENSE = 'CCW'): hcdc rotation angles are its opposite
    cube, angles = np.asarray(science.cube[0], dtype=np.float32), rotation_from_derotation(science.derot)
    assert np.ptp(angles) < 5.0  # little field rotation
    reference = fits.getdata(path)[0]
    x, y = _companion_xy(cube.shape[-1], science.pixel_scale_mas)
    fwhm = 4.0
    adi = max(
        snr.snr_at(get_algorithm("pca").function(cube, angles, fwhm=fwhm, ncomp=k), x, y, fwhm=fwhm).snr
        for k in (1, 2, 3, 5)
    )
    cadi = snr.snr_at(get_algorithm("cadi").function(cube, angles, fwhm=fwhm), x, y, fwhm=fwhm).snr
    rdi = snr.snr_at(
        get_algorithm("rdi").function(cube, angles, fwhm=fwhm, reference=reference, ncomp=5, n_keep=20),
        x,
        y,
        fwhm=fwhm,
    ).snr
    # RDI+ADI: 3.4 deg of rotation moves the companion by 1 px, no science frame qualifies (1 FWHM)
    sep_px = SEP_MAS / science.pixel_scale_mas
    rdi_adi = snr.snr_at(
        get_algorithm("rdi_adi").function(
            cube, angles, fwhm=fwhm, reference=reference, ncomp=5, n_keep=20, rot_radius=sep_px
        ),
        x,
        y,
        fwhm=fwhm,
    ).snr
    print(
        f"S/N of the companion: ADI PCA best {adi:.1f}, cADI {cadi:.1f}, RDI {rdi:.1f}, RDI+ADI {rdi_adi:.1f}"
    )
    assert rdi > 10.0 and rdi > 3.0 * max(adi, cadi)
    assert rdi_adi == pytest.approx(rdi)

    # the pipeline: l2-rdi with the library finds the companion where it is
    result = run_recipe(
        "l2-rdi",
        {"level1": catalogue.storage_root / "products" / "HD_1" / "level1", "library": path},
        ["ncomp=5", 'algorithm_params={"n_keep": 20}', "compute_contrast=false", "previews=false"],
        work_dir=tmp_path / "l2",
    )
    summary = result.outputs["summary"]
    assert summary["rdi_library"]["name"] == "hd1-all" and summary["rdi_library"]["frames"] == 40
    found = [d for d in summary["detections"] if abs(d["separation_mas"] - SEP_MAS) < 25]
    assert found and found[0]["snr"] > 10.0, summary["detections"]
    print(f"l2-rdi detection: {found[0]['separation_mas']:.0f} mas, S/N {found[0]['snr']:.1f}")
    # with its (default) 5-sigma contrast curve: measured with fakes in the science frames reduced
    # with the same library (honest: tests/science/postprocessing/test_rdi_contrast.py); the
    # companion, found at S/N > 10, is above the limit at its separation
    with_curve = run_recipe(
        "l2-rdi",
        {"level1": catalogue.storage_root / "products" / "HD_1" / "level1", "library": path},
        ["ncomp=5", 'algorithm_params={"n_keep": 20}', "previews=false"],
        work_dir=tmp_path / "l2c",
    ).outputs["summary"]
    at = {round(c["separation_arcsec"], 3): c["contrast"][0] for c in with_curve["contrast_at"]}
    print(f"l2-rdi 5-sigma contrast: {at}")
    assert at[0.2] is not None and 0 < at[0.2] < CONTRAST


def test_library_uses_only_what_the_account_may_see(centre):
    catalogue, products = centre
    conn, alice = _user_catalogue(catalogue, "alice")
    try:
        lib = alice.rdi.build(products["HD 1"], name="hd1-alice", settings=LibrarySettings(max_frames=500))
        sources = {f["product_id"] for f in lib["frames"]}
        assert products[HIDDEN] not in sources  # R18: a private product never enters her library
        assert sources == {products[t] for t in ("HD 2", "HD 4", "HD 5")}
        assert lib["n_frames"] == 3 * 18 and lib["record"]["candidate_frames"] == 3 * 18
        with pytest.raises(NotFound):
            alice.rdi.build(products[HIDDEN])  # her science product must be visible too
    finally:
        conn.close()
    conn, staff = _user_catalogue(catalogue, None)
    try:
        staff_lib = staff.rdi.build(
            products["HD 1"], name="hd1-staff", settings=LibrarySettings(max_frames=500)
        )
        assert products[HIDDEN] in {f["product_id"] for f in staff_lib["frames"]}
        staff_id = staff_lib["id"]
    finally:
        conn.close()
    conn, alice = _user_catalogue(catalogue, "alice")
    try:
        names = {x["name"] for x in alice.rdi.list()}
        assert "hd1-alice" in names and "hd1-staff" not in names  # R18: a hidden source hides the library
        with pytest.raises(NotFound):
            alice.rdi.show(staff_id)
        with pytest.raises(NotFound):
            alice.rdi.file("hd1-staff")
        decision = AccessContext(conn, load_principal(conn, "alice")).can_see_rdi_library(staff_id)
        assert (decision.allowed, decision.rule) == (False, "R18")
    finally:
        conn.close()


def test_library_conditions_thresholds_and_setup_mismatch(centre):
    catalogue, products = centre
    conn, cat = _user_catalogue(catalogue, None)
    try:
        # the simulated nights have no SPARTA files: a Strehl threshold leaves no frame
        with pytest.raises(ValueError, match="no frame in the conditions thresholds"):
            cat.rdi.build(products["HD 1"], name="strehl", settings=LibrarySettings(strehl_min=0.5))
        cat.rdi.build(products["HD 1"], name="hd1-once", settings=LibrarySettings(max_frames=5))
        with pytest.raises(ValueError, match="exists already"):
            cat.rdi.build(products["HD 1"], name="hd1-once")
        with pytest.raises(ValueError, match="library name"):
            cat.rdi.build(products["HD 1"], name="../escape")
    finally:
        conn.close()
    # a different DIT range rejects every product by set-up
    with catalogue.engine.begin() as conn:
        from hcdc.archive.models import File

        conn.execute(update(File).where(File.target == "HD1").values(dit=64.0))
    conn, cat = _user_catalogue(catalogue, None)
    try:
        with pytest.raises(ValueError, match="set-up: DIT"):
            cat.rdi.build(products["HD 1"], name="dit", settings=LibrarySettings(dit_factor=1.5))
    finally:
        conn.close()
    with catalogue.engine.begin() as conn:
        from hcdc.archive.models import File

        conn.execute(update(File).where(File.target == "HD1").values(dit=16.0))


#: per-product conditions (seeing arcsec, tau0 s, Strehl, wind m/s, airmass) of the conditions-ranking
#: test: HD 2 and HD 4 observed in the science star's conditions (HD 4 nearly), HD 3 and HD 5 in bad
#: seeing; one wind and airmass for all (the airmass computed from each pointing would differ)
CONDITIONS = {
    "HD 1": (0.6, 5e-3, 0.8, 10.0, 1.2),
    "HD 2": (0.6, 5e-3, 0.8, 10.0, 1.2),
    "HD 3": (1.5, 2e-3, 0.4, 10.0, 1.2),
    "HD 4": (0.65, 4.5e-3, 0.75, 10.0, 1.2),
    "HD 5": (1.5, 2e-3, 0.4, 10.0, 1.2),
}
#: the wind-and-airmass test: every star in the science star's seeing, tau0 and Strehl; HD 2 with
#: three times the wind (d = ln 3 / sqrt 5 = 0.491), HD 4 at airmass 2.0 instead of 1.1
#: (d = ln(2.0 / 1.1) / sqrt 5 = 0.267), HD 3 and HD 5 the same in all five (d = 0)
CONDITIONS_WIND_AIRMASS = {
    "HD 1": (0.6, 5e-3, 0.8, 10.0, 1.1),
    "HD 2": (0.6, 5e-3, 0.8, 30.0, 1.1),
    "HD 3": (0.6, 5e-3, 0.8, 10.0, 1.1),
    "HD 4": (0.6, 5e-3, 0.8, 10.0, 2.0),
    "HD 5": (0.6, 5e-3, 0.8, 10.0, 1.1),
}


def test_library_ranking_can_prefer_frames_of_similar_conditions(night, database_url, tmp_path):
    """Known answer: by correlation alone (the default) the library mixes all four stars (they
    share the instrument's speckles); with ``conditions_weight`` 1 the frames of the two stars
    observed in the science star's conditions rank first and fill a library of their size; the
    default still ranks by correlation alone although the products now carry conditions."""
    catalogue, products = _make_centre(night, database_url, tmp_path, CONDITIONS)
    try:
        conn, cat = _user_catalogue(catalogue, None)
        try:
            from hcdc.instruments.registry import read_level1_frames

            n = read_level1_frames(night["level1"]["HD 2"][0], False).cube.shape[1]
            plain = cat.rdi.build(products["HD 1"], name="plain", settings=LibrarySettings(max_frames=2 * n))
            similar = cat.rdi.build(
                products["HD 1"],
                name="similar",
                settings=LibrarySettings(max_frames=2 * n, conditions_weight=1.0),
            )
        finally:
            conn.close()
    finally:
        catalogue.engine.dispose()
    by_target = lambda lib: {f["target"] for f in lib["frames"]}  # noqa: E731
    assert len(by_target(plain) & {"HD3", "HD5", "HD 3", "HD 5"}) >= 1, by_target(plain)
    assert by_target(similar) <= {"HD2", "HD4", "HD 2", "HD 4"} and len(similar["frames"]) == 2 * n
    assert similar["record"]["science_conditions"] == pytest.approx(
        {"SEEING": 0.6, "TAU0": 5e-3, "STREHL": 0.8, "WIND": 10.0, "AIRMASS": 1.2}
    )
    assert similar["record"]["settings"]["conditions_weight"] == 1.0
    assert (
        plain["record"]["settings"]["conditions_weight"] == 0.0
        and "science_conditions" not in plain["record"]
    )
    correlations = [f["correlation"] for f in plain["frames"]]
    assert correlations == sorted(correlations, reverse=True)
    assert {f["seeing_arcsec"] for f in similar["frames"]} <= {0.6, 0.65}  # stored with each frame


def test_library_ranking_counts_wind_and_airmass(night, database_url, tmp_path):
    """Known answer: references that differ from the science sequence only in wind speed or
    airmass. With a large weight the two stars identical in all five quantities rank first, then
    the one at another airmass (d = 0.267), and the one in three times the wind (d = 0.491) is left
    out of a library of three products; comparing seeing, tau0 and Strehl only (the earlier
    distance) sees no difference and gives the correlation ranking exactly."""
    catalogue, products = _make_centre(night, database_url, tmp_path, CONDITIONS_WIND_AIRMASS)
    try:
        conn, cat = _user_catalogue(catalogue, None)
        try:
            from hcdc.instruments.registry import read_level1_frames

            n = read_level1_frames(night["level1"]["HD 2"][0], False).cube.shape[1]
            plain = cat.rdi.build(products["HD 1"], name="plain", settings=LibrarySettings(max_frames=3 * n))
            five = cat.rdi.build(
                products["HD 1"],
                name="five",
                settings=LibrarySettings(max_frames=3 * n, conditions_weight=10.0),
            )
            three = cat.rdi.build(
                products["HD 1"],
                name="three",
                settings=LibrarySettings(
                    max_frames=3 * n,
                    conditions_weight=10.0,
                    conditions_quantities=("SEEING", "TAU0", "STREHL"),
                ),
            )
        finally:
            conn.close()
    finally:
        catalogue.engine.dispose()
    sources = lambda lib: [f["product_id"] for f in lib["frames"]]  # noqa: E731
    ranked = sources(five)
    assert set(ranked[: 2 * n]) == {products["HD 3"], products["HD 5"]}
    assert set(ranked[2 * n :]) == {products["HD 4"]} and len(ranked) == 3 * n
    assert products["HD 2"] not in ranked
    # the earlier distance (seeing, tau0, Strehl) is 0 for all: the correlation ranking, frame for frame
    key = lambda lib: [(f["product_id"], f["frame_index"]) for f in lib["frames"]]  # noqa: E731
    assert key(three) == key(plain)
    assert five["record"]["science_conditions"] == pytest.approx(
        {"SEEING": 0.6, "TAU0": 5e-3, "STREHL": 0.8, "WIND": 10.0, "AIRMASS": 1.1}
    )
    assert five["record"]["settings"]["conditions_quantities"] == [
        "SEEING",
        "TAU0",
        "STREHL",
        "WIND",
        "AIRMASS",
    ]
    assert three["record"]["science_conditions"] == pytest.approx(
        {"SEEING": 0.6, "TAU0": 5e-3, "STREHL": 0.8}
    )
    with pytest.raises(ValueError, match="conditions_quantities"):
        LibrarySettings(conditions_quantities=("SEEING", "HUMIDITY"))
    with pytest.raises(ValueError, match="telemetry quantity"):
        LibrarySettings(conditions_quantities=("AIRMASS",))


def test_rdi_cli_build_list_show_reduce(centre, tmp_path):
    catalogue, products = centre
    root = ["--root", str(catalogue.settings.root)]
    runner = CliRunner()
    built = runner.invoke(
        app,
        ["rdi", "build", f"p{products['HD 2']}", "--name", "hd2-cli", "--max-frames", "10", "--json", *root],
    )
    assert built.exit_code == 0, built.output
    payload = json.loads(built.stdout)
    assert payload["n_frames"] == 10 and payload["name"] == "hd2-cli"
    assert products["HD 2"] not in {f["product_id"] for f in payload["frames"]}
    listed = runner.invoke(app, ["rdi", "list", "--json", *root])
    assert listed.exit_code == 0 and "hd2-cli" in {x["name"] for x in json.loads(listed.stdout)}
    shown = runner.invoke(app, ["rdi", "show", "hd2-cli", *root])
    assert shown.exit_code == 0 and "hd2-cli" in shown.output and "correlation" in shown.output
    as_alice = runner.invoke(app, ["rdi", "show", "hd2-cli", "--as", "alice", *root])
    if products[HIDDEN] in {f["product_id"] for f in payload["frames"]}:  # R18
        assert as_alice.exit_code == 1 and "no RDI library" in as_alice.output
    else:
        assert as_alice.exit_code == 0, as_alice.output
    missing = runner.invoke(app, ["rdi", "show", "nope", *root])
    assert missing.exit_code == 1 and "no RDI library" in missing.output
    # ranking by similar conditions needs the science product's conditions (none here: no SPARTA)
    by_conditions = ["rdi", "build", f"p{products['HD 2']}", "--name", "hd2-cond", "--conditions-weight"]
    refused = runner.invoke(app, [*by_conditions, "0.5", *root])
    assert refused.exit_code == 1 and "no per-frame conditions" in refused.output, refused.output
    assert runner.invoke(app, [*by_conditions, "-1", *root]).exit_code == 2
    assert runner.invoke(app, ["rdi", "build", "--help"]).exit_code == 0
    # the science star's own library, built here (the test does not lean on another test's library)
    built_hd1 = runner.invoke(
        app, ["rdi", "build", f"p{products['HD 1']}", "--name", "hd1-cli", "--max-frames", "40", *root]
    )
    assert built_hd1.exit_code == 0, built_hd1.output
    reduced = runner.invoke(
        app,
        [
            "rdi",
            "reduce",
            "hd1-cli",
            "--out",
            str(tmp_path / "l2"),
            "--ncomp",
            "5",
            "--n-keep",
            "20",
            "--json",
            *root,
        ],
    )
    assert reduced.exit_code == 0, reduced.output
    result = json.loads(reduced.stdout)
    assert Path(result["product"]).is_file() and result["summary"]["rdi_library"]["name"] == "hd1-cli"
    assert any(
        abs(d["separation_mas"] - SEP_MAS) < 25 and d["snr"] > 10 for d in result["summary"]["detections"]
    )


def test_rdi_api_answers_what_the_caller_may_see(centre):
    import datetime as dt

    from fastapi.testclient import TestClient

    from hcdc.web.app import create_app

    catalogue, products = centre
    # this test's own libraries: the tests share one module-scoped centre and may run in any order
    # (xdist), so each builds the libraries it reads, under its own names
    for account, name in (("alice", "api-alice"), (None, "api-staff")):
        conn, cat = _user_catalogue(catalogue, account)
        try:
            cat.rdi.build(products["HD 1"], name=name, settings=LibrarySettings(max_frames=500))
        finally:
            conn.close()
    app = create_app(catalogue=catalogue, clock=lambda: dt.datetime(2026, 12, 1), secret_key="test-secret")
    client = TestClient(app, base_url="http://testserver")  # anonymous: public data only
    listed = client.get("/api/v1/rdi/libraries")
    assert listed.status_code == 200
    names = {x["name"] for x in listed.json()}
    assert "api-alice" in names and "api-staff" not in names  # a private source hides a library (R18)
    by_product = client.get("/api/v1/rdi/libraries", params={"product": products["HD 1"]}).json()
    assert by_product and all(x["science_product_id"] == products["HD 1"] for x in by_product)
    alice_id = next(x["id"] for x in listed.json() if x["name"] == "api-alice")
    shown = client.get(f"/api/v1/rdi/libraries/{alice_id}")
    assert shown.status_code == 200 and len(shown.json()["frames"]) == shown.json()["n_frames"]
    with catalogue.engine.connect() as conn:
        from hcdc.archive.rdi_models import RdiLibrary

        staff_id = conn.scalar(select(RdiLibrary.id).where(RdiLibrary.name == "api-staff"))
    assert client.get(f"/api/v1/rdi/libraries/{staff_id}").status_code == 404
    assert client.get("/api/v1/rdi/libraries/999999").status_code == 404


def test_migration_0022_downgrades_and_upgrades(catalogue) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from hcdc.archive.db import alembic_config, current_revision, head_revision

    tables = {"rdi_libraries", "rdi_library_frames"}
    assert tables <= set(inspect(catalogue.engine).get_table_names())
    config = alembic_config()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0019_obsportal")
    assert not tables & set(inspect(catalogue.engine).get_table_names())
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert tables <= set(inspect(catalogue.engine).get_table_names())
    assert current_revision(catalogue.engine) == head_revision()


def test_l2_rdi_refuses_bad_inputs_naming_them(night, tmp_path):
    from astropy.io import fits

    from hcdc.pipeline.errors import RecipeInputError
    from hcdc.pipeline.recipe import RecipeFailed

    folder = night["level1"]["HD 1"][0]
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((3, 64, 64), dtype=np.float32)).writeto(plain)
    with pytest.raises(RecipeFailed, match=r"plain\.fits: not an RDI library") as failed:
        run_recipe(
            "l2-rdi",
            {"level1": folder, "library": plain},
            ["compute_contrast=false"],
            work_dir=tmp_path / "a",
        )
    small = tmp_path / "small.fits"
    hdu = fits.PrimaryHDU(np.zeros((2, 3, 32, 32), dtype=np.float32))
    hdu.header["HIERARCH HCDC PRODUCT"] = "RDI_LIBRARY"
    hdu.writeto(small)
    assert isinstance(failed.value.__cause__, RecipeInputError)  # the user's input, not a crash
    with pytest.raises(RecipeFailed, match=r"small\.fits: library frames .* do not match"):
        run_recipe(
            "l2-rdi",
            {"level1": folder, "library": small},
            ["compute_contrast=false"],
            work_dir=tmp_path / "b",
        )
    with pytest.raises(Exception, match="does not take a reference library"):
        run_recipe("l2-rdi", {"level1": folder, "library": small}, ["algorithm=pca"], work_dir=tmp_path / "c")
