"""Paginated, sortable searches over files, datasets and products (portal and REST API).

Each search takes the ``visible`` SQL clause of the asking user (from
:class:`hcdc.archive.access.AccessContext`) and applies it in the same ``WHERE`` as the
criteria, so the total, the pages and the counts never include a row the user may not see.
Every criterion is a bound parameter; text criteria match case-insensitively as substrings
with LIKE wildcards escaped.

Coordinates: ``ra``/``dec`` in degrees (ICRS), ``radius`` in arcseconds; the cone test is
done in SQL on a bounding box, then exactly (great-circle distance) in Python on the page.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Alias, ColumnElement, Connection, Select, and_, extract, func, or_, select

from hcdc.archive.access import programme_key, programme_key_sql
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Job, Product

MAX_PAGE_SIZE = 500


class SearchError(ValueError):
    """A search criterion is invalid; the message names it."""


def _contains(column, value: str) -> ColumnElement[bool]:  # noqa: ANN001 - a column
    return func.lower(column).contains(value.lower(), autoescape=True)


@dataclass
class Page:
    """One page of results: ``rows`` out of ``total`` matches, starting at ``offset``."""

    total: int
    offset: int
    limit: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "offset": self.offset, "limit": self.limit, "items": self.rows}


@dataclass
class Criteria:
    """Search criteria shared by files, datasets and products (None: no criterion).

    ``night_from``/``night_to`` are inclusive dates of the night's start; ``programme`` is an
    ESO programme id with or without its run letter (``0104.C-0007`` matches its runs).
    Conditions (``seeing_max`` in arcsec, ``tau0_min`` in s, ``airmass_max``) apply to files,
    and to datasets and products through their files (at least one file meets them).
    """

    target: str | None = None
    ra: float | None = None  # deg
    dec: float | None = None  # deg
    radius: float | None = None  # arcsec
    instrument: str | None = None
    mode: str | None = None
    filter: str | None = None
    night_from: dt.date | None = None
    night_to: dt.date | None = None
    programme: str | None = None
    seeing_max: float | None = None
    tau0_min: float | None = None
    airmass_max: float | None = None
    # products only
    level: int | None = None
    product_type: str | None = None
    algorithm: str | None = None
    has_detections: bool | None = None
    contrast_05_max: float | None = None  # 5-sigma contrast reached at 0.5" (first wavelength)
    # paging and order
    sort: str = "id"
    descending: bool = True
    offset: int = 0
    limit: int = 50

    def check(self) -> None:
        if self.limit < 1 or self.limit > MAX_PAGE_SIZE:
            raise SearchError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {self.limit}")
        if not 0 <= self.offset < 2**31:
            raise SearchError(f"offset must be between 0 and 2**31 - 1, got {self.offset}")
        cone = (self.ra, self.dec, self.radius)
        if any(v is not None for v in cone) and any(v is None for v in cone):
            raise SearchError("a cone search needs ra, dec and radius together")
        if self.radius is not None and not 0 < self.radius <= 36000:
            raise SearchError(f"radius must be in (0, 36000] arcsec, got {self.radius}")
        if self.dec is not None and not -90 <= self.dec <= 90:
            raise SearchError(f"dec must be in [-90, 90] deg, got {self.dec}")
        if self.ra is not None and not 0 <= self.ra < 360:
            raise SearchError(f"ra must be in [0, 360) deg, got {self.ra}")


def _cone_box(ra_col, dec_col, c: Criteria) -> ColumnElement[bool]:  # noqa: ANN001 - columns
    """Bounding box of the cone (SQL); refined by :func:`_in_cone`."""
    radius = c.radius / 3600.0
    conditions = [dec_col.between(c.dec - radius, c.dec + radius)]
    cos_dec = math.cos(math.radians(min(89.999, abs(c.dec) + radius)))
    half_width = radius / cos_dec
    if half_width < 180:
        low, high = c.ra - half_width, c.ra + half_width
        if low < 0:
            conditions.append(or_(ra_col >= low + 360, ra_col <= high))
        elif high >= 360:
            conditions.append(or_(ra_col >= low, ra_col <= high - 360))
        else:
            conditions.append(ra_col.between(low, high))
    return and_(*conditions)


def _in_cone(ra: float | None, dec: float | None, c: Criteria) -> bool:
    if ra is None or dec is None:
        return False
    r1, d1, r2, d2 = map(math.radians, (ra, dec, c.ra, c.dec))
    hav = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(hav)))) * 3600.0 <= c.radius


def _file_conditions(c: Criteria) -> list[ColumnElement[bool]]:
    """Conditions over ``files`` (also used, correlated, for datasets and products)."""
    out: list[ColumnElement[bool]] = []
    if c.seeing_max is not None:
        out.append(File.seeing <= c.seeing_max)
    if c.tau0_min is not None:
        out.append(File.tau0 >= c.tau0_min)
    if c.airmass_max is not None:
        out.append(File.airmass <= c.airmass_max)
    if c.ra is not None:
        out.append(_cone_box(File.ra, File.dec, c))
    return out


def _datasets_alias() -> Alias:
    """A Core alias of ``datasets`` (its columns as ``.c.name``).

    Not ``orm.aliased(Dataset)``: the ORM adapts each column of a fresh alias on first use, which
    was a fifth of the CPU time of a product search (cProfile, benchmarks/RESULTS.md)."""
    return Dataset.__table__.alias()


def _dataset_conditions(c: Criteria, ds: Any = Dataset) -> list[ColumnElement[bool]]:
    """Conditions over ``datasets`` (or the columns ``ds`` of an alias of it)."""
    out: list[ColumnElement[bool]] = []
    if c.target:
        out.append(_contains(ds.target, c.target))
    if c.instrument:
        out.append(func.upper(ds.instrument) == c.instrument.upper())
    if c.mode:
        out.append(func.upper(ds.mode) == c.mode.upper())
    if c.filter:
        out.append(_contains(ds.setup, c.filter))
    if c.night_from:
        out.append(ds.night >= c.night_from)
    if c.night_to:
        out.append(ds.night <= c.night_to)
    if c.programme:
        out.append(programme_key_sql(ds.prog_id) == programme_key(c.programme))
    file_conditions = _file_conditions(c)
    if file_conditions:
        out.append(
            select(File.id).where(File.dataset_id == ds.id, File.is_current, *file_conditions).exists()
        )
    return out


def _sorted(query: Select, columns: dict[str, Any], c: Criteria) -> Select:
    if c.sort not in columns:
        raise SearchError(f"cannot sort by {c.sort!r}; choose one of {', '.join(sorted(columns))}")
    column = columns[c.sort]
    order = column.desc() if c.descending else column.asc()
    tie = columns["id"].desc() if c.descending else columns["id"].asc()
    return query.order_by(order.nulls_last(), tie)


def _page(conn: Connection, query: Select, c: Criteria) -> tuple[int, list[dict[str, Any]]]:
    """(total matches, rows of the page as dicts). The total comes with the page as a window
    count (``count(*) OVER ()``): the visibility clause is evaluated once, not twice; a page past
    the end needs a separate count."""
    total_column = func.count().over().label("_total")
    rows = [
        dict(r._mapping)
        for r in conn.execute(query.add_columns(total_column).offset(c.offset).limit(c.limit))
    ]
    if rows:
        total = rows[0]["_total"]
    elif c.offset == 0:
        total = 0
    else:
        total = conn.scalar(query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None))
    for row in rows:
        del row["_total"]
    return int(total or 0), rows


# -- files ------------------------------------------------------------------------------------

FILE_SORTS = {"id": File.id, "date": File.date_obs, "target": File.target, "instrument": File.instrument}


def search_files(conn: Connection, c: Criteria, visible: ColumnElement[bool]) -> Page:
    """Current versions of catalogued files matching ``c`` that ``visible`` lets through."""
    c.check()
    conditions = [File.is_current, visible, *_file_conditions(c)]
    if c.target:
        conditions.append(_contains(File.target, c.target))
    if c.instrument:
        conditions.append(func.upper(File.instrument) == c.instrument.upper())
    if c.mode:
        conditions.append(func.upper(File.mode) == c.mode.upper())
    if c.filter:
        conditions.append(_contains(File.filter, c.filter))
    if c.night_from:
        conditions.append(File.night >= c.night_from)
    if c.night_to:
        conditions.append(File.night <= c.night_to)
    if c.programme:
        conditions.append(programme_key_sql(File.prog_id) == programme_key(c.programme))
    query = select(
        File.id,
        File.path,
        File.instrument,
        File.arm,
        File.mode,
        File.type,
        File.night,
        File.date_obs,
        File.target,
        File.ra,
        File.dec,
        File.filter,
        File.dit,
        File.ndit,
        File.prog_id,
        File.seeing,
        File.tau0,
        File.airmass,
        File.is_calibration,
        File.dataset_id,
        File.sha256,
        File.size,
    ).where(*conditions)
    total, rows = _page(conn, _sorted(query, FILE_SORTS, c), c)
    out = []
    for r in rows:
        if c.ra is not None and not _in_cone(r["ra"], r["dec"], c):
            continue
        row = r
        row["name"] = Path(row.pop("path")).name
        out.append(row)
    return Page(total, c.offset, c.limit, out)


# -- datasets ---------------------------------------------------------------------------------

DATASET_SORTS = {
    "id": Dataset.id,
    "night": Dataset.night,
    "target": Dataset.target,
    "instrument": Dataset.instrument,
    "files": Dataset.n_files,
}


def search_datasets(conn: Connection, c: Criteria, visible: ColumnElement[bool]) -> Page:
    """Datasets matching ``c`` that ``visible`` lets through."""
    c.check()
    query = select(
        Dataset.id,
        Dataset.instrument,
        Dataset.arm,
        Dataset.mode,
        Dataset.target,
        Dataset.night,
        Dataset.setup,
        Dataset.prog_id,
        Dataset.n_files,
        Dataset.exposure_s,
        Dataset.mjd_start,
        Dataset.mjd_end,
    ).where(visible, *_dataset_conditions(c))
    total, rows = _page(conn, _sorted(query, DATASET_SORTS, c), c)
    return Page(total, c.offset, c.limit, rows)


# -- products ---------------------------------------------------------------------------------


def _product_sorts(columns: Any) -> dict[str, Any]:
    """Sort keys over the columns of a product search (``Product`` and dataset columns)."""
    return {
        "id": columns.id,
        "target": columns.target,
        "night": columns.night,
        "level": columns.level,
        "instrument": columns.instrument,
        "created": columns.created_at,
    }


PRODUCT_SORTS = ("id", "target", "night", "level", "instrument", "created")


def _algorithm(summary: dict[str, Any] | None) -> str | None:
    return (summary or {}).get("algorithm")


def contrast_at(summary: dict[str, Any] | None, separation_arcsec: float = 0.5) -> float | None:
    """The 5-sigma contrast of a Level 2 summary at ``separation_arcsec`` (first wavelength)."""
    for entry in (summary or {}).get("contrast_at") or []:
        if abs(float(entry.get("separation_arcsec", -1)) - separation_arcsec) < 1e-9:
            values = entry.get("contrast") or []
            return values[0] if values else None
    return None


def search_products(conn: Connection, c: Criteria, visible: ColumnElement[bool]) -> Page:
    """Current products matching ``c`` that ``visible`` lets through.

    ``algorithm``, ``has_detections`` and ``contrast_05_max`` read the product's summary (JSON)
    in SQL, the same way on SQLite and PostgreSQL.
    """
    c.check()
    # the dataset columns come from an alias: the visibility clause has its own correlated
    # subqueries over ``datasets``, which must not be correlated to the joined table
    ds_table = _datasets_alias()
    ds = ds_table.c
    conditions: list[ColumnElement[bool]] = [Product.is_current]
    dataset_conditions = _dataset_conditions(Criteria(**{**c.__dict__, "target": None}), ds)
    if c.target:
        # the product's target or its dataset's; the dataset side as a subquery of ids, so that
        # both tests run on their own table before any join (a join then only for the matches)
        named = _datasets_alias().c
        of_dataset = select(named.id).where(_contains(named.target, c.target))
        conditions.append(or_(_contains(Product.target, c.target), Product.dataset_id.in_(of_dataset)))
    conditions.extend(dataset_conditions)
    if c.level is not None:
        conditions.append(Product.level == c.level)
    if c.product_type:
        conditions.append(Product.product_type == c.product_type)
    if c.algorithm:
        conditions.append(Product.summary["algorithm"].as_string() == c.algorithm)
    if c.has_detections is not None:
        detections = Product.summary["detections"].as_string()
        has = and_(detections.is_not(None), detections != "[]")
        conditions.append(has if c.has_detections else ~has)
    # The criteria select the candidates first, in a subquery that the planner keeps apart
    # (OFFSET 0); the visibility clause is then evaluated on the candidates only (per row, with
    # indexed lookups) rather than on every product before the criteria that join the datasets
    # (~20x less work for a target search on 10 000 products, see benchmarks/RESULTS.md).
    candidates = select(
        Product.id,
        Product.level,
        Product.product_type,
        Product.target,
        Product.dataset_id,
        Product.recipe,
        Product.recipe_version,
        Product.workflow,
        Product.job_id,
        Product.status,
        Product.created_at,
        Product.summary,
    )
    if dataset_conditions:  # the datasets are joined here only when a criterion needs them
        candidates = candidates.outerjoin(ds_table, ds.id == Product.dataset_id)
    candidates = candidates.where(*conditions).offset(0).subquery("candidates")
    shown_table = _datasets_alias()  # the dataset columns of the results, joined for the visible ones
    shown = shown_table.c
    query = (
        select(
            *candidates.c,
            shown.instrument,
            shown.arm,
            shown.mode,
            shown.night,
            shown.setup,
            shown.prog_id,
        )
        .select_from(
            candidates.join(Product, Product.id == candidates.c.id).outerjoin(
                shown_table, shown.id == candidates.c.dataset_id
            )
        )
        .where(visible)
    )
    sort_columns = {**dict(candidates.c.items()), **{k: getattr(shown, k) for k in ("night", "instrument")}}
    sorts = _product_sorts(SimpleNamespace(**sort_columns))
    if c.contrast_05_max is not None:
        # the contrast lives in a JSON list: filter this part in Python, over every match
        rows = [r for r in conn.execute(_sorted(query, sorts, c)).all()]
        rows = [dict(r._mapping) for r in rows]
        rows = [r for r in rows if (v := contrast_at(r["summary"])) is not None and v <= c.contrast_05_max]
        total, rows = len(rows), rows[c.offset : c.offset + c.limit]
    else:
        total, rows = _page(conn, _sorted(query, sorts, c), c)
    out = []
    for row in rows:
        summary = row.pop("summary") or {}
        row["algorithm"] = _algorithm(summary)
        row["n_detections"] = len(summary.get("detections") or [])
        row["contrast_05"] = contrast_at(summary)
        row["type"] = row.pop("product_type")
        out.append(row)
    return Page(total, c.offset, c.limit, out)


# -- counts -----------------------------------------------------------------------------------


def archive_counts(
    conn: Connection, files_visible: ColumnElement[bool], products_visible: ColumnElement[bool]
) -> dict[str, Any]:
    """What the archive holds that the user may see: files per instrument and per year
    (of the night), products per level and per instrument."""
    files_by_instrument = conn.execute(
        select(File.instrument, func.count()).where(File.is_current, files_visible).group_by(File.instrument)
    ).all()
    year = extract("year", File.night)
    files_by_year = conn.execute(
        select(year, func.count())
        .where(File.is_current, files_visible, File.night.is_not(None))
        .group_by(year)
        .order_by(year)
    ).all()
    products_by_level = conn.execute(
        select(Product.level, func.count())
        .where(Product.is_current, products_visible)
        .group_by(Product.level)
    ).all()
    ds = _datasets_alias()  # not correlated with the visibility clause's own subqueries
    products_by_instrument = conn.execute(
        select(ds.c.instrument, func.count())
        .select_from(Product)
        .outerjoin(ds, ds.c.id == Product.dataset_id)
        .where(Product.is_current, products_visible)
        .group_by(ds.c.instrument)
    ).all()
    return {
        "files_by_instrument": {
            str(k): int(v) for k, v in sorted(files_by_instrument, key=lambda r: str(r[0]))
        },
        "files_by_year": {str(int(k)): int(v) for k, v in files_by_year},
        "products_by_level": {
            ("L?" if k is None else f"L{k}"): int(v) for k, v in sorted(products_by_level, key=str)
        },
        "products_by_instrument": {
            str(k or "none"): int(v) for k, v in sorted(products_by_instrument, key=lambda r: str(r[0]))
        },
    }


# -- jobs -------------------------------------------------------------------------------------


def search_jobs(
    conn: Connection, visible: ColumnElement[bool], state: str | None, offset: int = 0, limit: int = 50
) -> Page:
    """Jobs (newest first) that ``visible`` lets through, optionally of one state."""
    c = Criteria(offset=offset, limit=limit)
    c.check()
    query = select(
        Job.id,
        Job.dataset_id,
        Job.workflow,
        Job.parameters,
        Job.state,
        Job.progress,
        Job.stage,
        Job.attempts,
        Job.queued_at,
        Job.started_at,
        Job.finished_at,
        Job.error,
    ).where(visible)
    if state:
        query = query.where(Job.state == state)
    total, rows = _page(conn, query.order_by(Job.id.desc()), c)
    return Page(total, offset, limit, rows)


__all__ = [
    "MAX_PAGE_SIZE",
    "Criteria",
    "Page",
    "SearchError",
    "archive_counts",
    "contrast_at",
    "search_datasets",
    "search_files",
    "search_jobs",
    "search_products",
]
