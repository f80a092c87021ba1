"""hcdc.archive.search with bound parameters (SQLite and PostgreSQL): the criteria's values are
bound at execution, the product search's statement is built once per shape of search and kind
of user, and none of that changes what a search finds or who finds it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Connection, update

from hcdc.archive import accounts
from hcdc.archive.access import ANONYMOUS, AccessContext, datetime_of_mjd, load_principal, local_operator
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Product
from hcdc.archive.search import Criteria, like_pattern, search_datasets, search_files, search_products

from .access_world import add_dataset, add_file, add_product, mjd

ADMIN = local_operator()
OBS = mjd(2024, 3, 1, 6)


@pytest.fixture
def conn(catalogue):
    with catalogue.engine.begin() as c:
        yield c


def _ids(page) -> list[int]:  # noqa: ANN001 - a search Page
    return [row["id"] for row in page.rows]


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("HD 1_0%") == "%hd 1/_0/%%"
    assert like_pattern("a/b") == "%a//b%"


def test_target_wildcards_are_literal_and_case_is_ignored(conn: Connection) -> None:
    names = ["HD 100", "HD 1x0", "hd 1_0", "51 Eri"]
    ids = {}
    for name in names:
        ds = add_dataset(conn, None, OBS)
        ids[name] = add_file(conn, None, OBS, is_calibration=True, dataset_id=ds)
        conn.execute(update(File).where(File.id == ids[name]).values(target=name))
    everyone = AccessContext(conn, ADMIN)
    assert _ids(search_files(conn, Criteria(target="HD 1_0"), everyone.files_clause())) == [ids["hd 1_0"]]
    found = set(_ids(search_files(conn, Criteria(target="hd 1"), everyone.files_clause())))
    assert found == {ids["HD 100"], ids["HD 1x0"], ids["hd 1_0"]}


@pytest.mark.parametrize("ra", [0.001, 359.999, 180.0])
def test_cone_boxes_across_ra_zero(conn: Connection, ra: float) -> None:
    """The cone's bounding box (bound bounds) keeps files on both sides of RA 0 and drops far ones."""
    everyone = AccessContext(conn, ADMIN)
    inside, outside = [], []
    for offset, near in [(-0.002, True), (0.002, True), (0.5, False)]:
        file_id = add_file(conn, None, OBS, is_calibration=True)
        conn.execute(update(File).where(File.id == file_id).values(ra=(ra + offset) % 360, dec=-10.0))
        (inside if near else outside).append(file_id)
    found = _ids(search_files(conn, Criteria(ra=ra, dec=-10.0, radius=36.0), everyone.files_clause()))
    assert set(found) == set(inside)


def test_dataset_criteria_are_bound(conn: Connection) -> None:
    a = add_dataset(conn, "0104.C-0007(A)", OBS)
    b = add_dataset(conn, "0104.C-0008(A)", OBS)
    conn.execute(update(Dataset).where(Dataset.id == a).values(mode="DBI", night=dt.date(2024, 3, 1)))
    conn.execute(update(Dataset).where(Dataset.id == b).values(mode="CI", night=dt.date(2024, 3, 2)))
    everyone = AccessContext(conn, ADMIN).datasets_clause()
    assert _ids(search_datasets(conn, Criteria(mode="dbi"), everyone)) == [a]
    assert _ids(search_datasets(conn, Criteria(programme="0104.C-0008"), everyone)) == [b]
    assert _ids(search_datasets(conn, Criteria(night_from=dt.date(2024, 3, 2)), everyone)) == [b]
    assert _ids(search_datasets(conn, Criteria(night_to=dt.date(2024, 3, 1)), everyone)) == [a]


def test_one_statement_serves_every_user_and_every_moment(conn: Connection) -> None:
    """The same search shape, asked in turn by the PI, anonymously, by another user and again by
    the PI, before and after the release date: each finds what the per-request clause finds
    (the cached statement carries no user and no clock), and a rights change applies at once."""
    for name in ("pi", "other"):
        accounts.add_user(conn, ADMIN, name, role="user")
    accounts.save_programme(conn, ADMIN, accounts.ProgrammeSpec("0104.C-0007", pi="pi"))
    proprietary = add_dataset(conn, "0104.C-0007(A)", OBS)
    released = add_dataset(conn, "0104.C-0007(A)", OBS - 3 * 365)
    products = {add_product(conn, proprietary): "proprietary", add_product(conn, released): "released"}
    conn.execute(update(Product).values(target="HD 95086"))
    pi, other = load_principal(conn, "pi"), load_principal(conn, "other")
    before_release = datetime_of_mjd(OBS) + dt.timedelta(days=30)
    after_release = datetime_of_mjd(OBS) + dt.timedelta(days=2 * 365 + 30)
    criteria = Criteria(target="95086")
    for now in (before_release, after_release, before_release):
        for user in (pi, ANONYMOUS, other, pi):
            ctx = AccessContext(conn, user, now)
            bound = _ids(search_products(conn, criteria, ctx.products_filter()))
            built = _ids(search_products(conn, criteria, ctx.products_clause()))
            assert bound == built, (user.name, now)
            per_object = sorted((p for p in products if ctx.can_see_product(p)), reverse=True)
            assert bound == per_object, (user.name, now)
    # the other user is made a co-I: the next search (same cached statement) shows the product
    accounts.save_programme(
        conn, ADMIN, accounts.ProgrammeSpec("0104.C-0007", pi="pi", cois=("other",)), replace=True
    )
    ctx = AccessContext(conn, other, before_release)
    assert set(_ids(search_products(conn, criteria, ctx.products_filter()))) == set(products)


def test_product_criteria_and_paging(conn: Connection) -> None:
    """Level, type, algorithm, detections, contrast at 0.5" (filtered in Python), sorting, and a
    page past the end (its total from a separate count), with the criteria bound."""
    ds = add_dataset(conn, None, OBS - 3 * 365)
    summaries = {
        "pca": {"algorithm": "pca", "detections": [{"sep": 0.3}], "contrast_at": [
            {"separation_arcsec": 0.5, "contrast": [2e-6]}]},
        "adi": {"algorithm": "adi", "detections": [], "contrast_at": [
            {"separation_arcsec": 0.5, "contrast": [3e-5]}]},
    }  # fmt: skip
    ids = {}
    for name, summary in summaries.items():
        ids[name] = add_product(conn, ds)
        conn.execute(update(Product).where(Product.id == ids[name]).values(summary=summary))
    ids["l1"] = add_product(conn, ds, product_type="level1-cube")
    conn.execute(update(Product).where(Product.id == ids["l1"]).values(level=1))
    everyone = AccessContext(conn, ADMIN).products_filter()

    def found(**criteria) -> list[int]:  # noqa: ANN003 - Criteria fields
        return _ids(search_products(conn, Criteria(**criteria), everyone))

    assert found(algorithm="pca") == [ids["pca"]]
    assert found(has_detections=True) == [ids["pca"]]
    assert found(has_detections=False) == [ids["l1"], ids["adi"]]
    assert found(level=1) == [ids["l1"]]
    assert found(product_type="level1-cube") == [ids["l1"]]
    assert found(contrast_05_max=1e-5) == [ids["pca"]]
    assert found(level=2, sort="id", descending=False) == [ids["pca"], ids["adi"]]
    past_end = search_products(conn, Criteria(level=2, offset=5, limit=1), everyone)
    assert (past_end.total, past_end.rows) == (2, [])
    assert search_products(conn, Criteria(level=2, offset=1, limit=1), everyone).total == 2
