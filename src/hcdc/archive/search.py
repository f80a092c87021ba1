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

from sqlalchemy import (
    Alias,
    BindParameter,
    ColumnElement,
    Connection,
    Date,
    Float,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    extract,
    func,
    or_,
    select,
    union,
)

from hcdc.archive.access import VisibilityFilter, programme_key, programme_key_sql
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Job, Product

MAX_PAGE_SIZE = 500


class SearchError(ValueError):
    """A search criterion is invalid; the message names it."""


LIKE_ESCAPE = "/"


def like_pattern(value: str) -> str:
    """``%value%`` in lower case with LIKE's wildcards (and the escape character) escaped: the
    bound value of a case-insensitive substring test (:func:`_contains`)."""
    escaped = value.lower().replace(LIKE_ESCAPE, 2 * LIKE_ESCAPE)
    escaped = escaped.replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"


def _like(column, pattern: Any) -> ColumnElement[bool]:  # noqa: ANN001 - a column
    """``lower(column) LIKE pattern`` (a bound :func:`like_pattern`): the GIN trigram indexes on
    ``lower(target)`` (migration 0023) can serve it on PostgreSQL."""
    return func.lower(column).like(pattern, escape=LIKE_ESCAPE)


def _contains(column, value: str) -> ColumnElement[bool]:  # noqa: ANN001 - a column
    """``column`` contains ``value``, case-insensitively, wildcards taken literally."""
    return _like(column, like_pattern(value))


def _param(name: str, type_: Any = None) -> BindParameter[Any]:
    """The bound parameter of criterion ``name`` (its value comes from :func:`_criteria_params`):
    the statements are built from the criteria's shape, their values are bound at execution."""
    return bindparam(f"c_{name}", type_=type_, required=True)


#: criteria whose value is bound (set: truthy strings, else not None), with their SQL types
_BOUND = {
    "target": String, "instrument": String, "mode": String, "filter": String, "programme": String,
    "night_from": Date, "night_to": Date, "seeing_max": Float, "tau0_min": Float, "airmass_max": Float,
    "level": Integer, "product_type": String, "algorithm": String,
}  # fmt: skip
_STRUCTURAL = ("has_detections", "sort", "descending")  # their values change the SQL itself


def _is_set(value: Any) -> bool:
    return bool(value) if isinstance(value, str) else value is not None


def _cone_bounds(c: Criteria) -> tuple[str, dict[str, float]]:
    """The bounding box of the cone (deg): its form (``plain``, ``wrap-low``, ``wrap-high``:
    around RA 0; ``dec-only``: the box spans every RA) and its bounds."""
    radius = c.radius / 3600.0
    bounds = {"dec_low": c.dec - radius, "dec_high": c.dec + radius}
    cos_dec = math.cos(math.radians(min(89.999, abs(c.dec) + radius)))
    half_width = radius / cos_dec
    if half_width >= 180:
        return "dec-only", bounds
    low, high = c.ra - half_width, c.ra + half_width
    if low < 0:
        return "wrap-low", {**bounds, "ra_low": low + 360, "ra_high": high}
    if high >= 360:
        return "wrap-high", {**bounds, "ra_low": low, "ra_high": high - 360}
    return "plain", {**bounds, "ra_low": low, "ra_high": high}


def _shape(c: Criteria) -> SimpleNamespace:
    """What of ``c`` shapes the SQL: ``True`` for a criterion that is set (its value is bound),
    the value itself for :data:`_STRUCTURAL` ones, the cone's form, whether the contrast filter
    applies. Statements are built from this alone (a value read by mistake fails loudly)."""
    shape: dict[str, Any] = {name: True if _is_set(getattr(c, name)) else None for name in _BOUND}
    shape.update({name: getattr(c, name) for name in _STRUCTURAL})
    shape["cone"] = _cone_bounds(c)[0] if c.ra is not None else None
    shape["contrast_05_max"] = c.contrast_05_max is not None
    return SimpleNamespace(**shape)


def _criteria_params(c: Criteria) -> dict[str, Any]:
    """The bound values of ``c``'s criteria (names of :func:`_param`), paging included."""
    transform = {
        "target": like_pattern, "filter": like_pattern, "instrument": str.upper, "mode": str.upper,
        "programme": programme_key,
    }  # fmt: skip
    params = {
        f"c_{name}": transform.get(name, lambda v: v)(getattr(c, name))
        for name in _BOUND
        if _is_set(getattr(c, name))
    }
    if c.ra is not None:
        params.update({f"c_{k}": v for k, v in _cone_bounds(c)[1].items()})
    params.update(c_offset=c.offset, c_limit=c.limit)
    return params


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


def _cone_box(ra_col, dec_col, form: str) -> ColumnElement[bool]:  # noqa: ANN001 - columns
    """Bounding box of the cone (SQL, bounds bound from :func:`_cone_bounds`); refined by
    :func:`_in_cone`."""
    conditions = [dec_col.between(_param("dec_low", Float), _param("dec_high", Float))]
    low, high = _param("ra_low", Float), _param("ra_high", Float)
    if form in ("wrap-low", "wrap-high"):
        conditions.append(or_(ra_col >= low, ra_col <= high))
    elif form == "plain":
        conditions.append(ra_col.between(low, high))
    return and_(*conditions)


def _in_cone(ra: float | None, dec: float | None, c: Criteria) -> bool:
    if ra is None or dec is None:
        return False
    r1, d1, r2, d2 = map(math.radians, (ra, dec, c.ra, c.dec))
    hav = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(hav)))) * 3600.0 <= c.radius


def _file_conditions(c: Any) -> list[ColumnElement[bool]]:
    """Conditions over ``files`` (also used, correlated, for datasets and products); ``c`` is a
    :func:`_shape`."""
    out: list[ColumnElement[bool]] = []
    if c.seeing_max:
        out.append(File.seeing <= _param("seeing_max", Float))
    if c.tau0_min:
        out.append(File.tau0 >= _param("tau0_min", Float))
    if c.airmass_max:
        out.append(File.airmass <= _param("airmass_max", Float))
    if c.cone:
        out.append(_cone_box(File.ra, File.dec, c.cone))
    return out


def _datasets_alias() -> Alias:
    """A Core alias of ``datasets`` (its columns as ``.c.name``).

    Not ``orm.aliased(Dataset)``: the ORM adapts each column of a fresh alias on first use, which
    was a fifth of the CPU time of a product search (cProfile, benchmarks/RESULTS.md)."""
    return Dataset.__table__.alias()


def _observation_conditions(
    c: Any, target: Any, instrument: Any, mode: Any, setup: Any, night: Any, prog_id: Any
) -> list[ColumnElement[bool]]:
    """The criteria files and datasets share (target, instrument, mode, filter, nights,
    programme) over the given columns of either; ``c`` is a :func:`_shape`, values bound."""
    out: list[ColumnElement[bool]] = []
    if c.target:
        out.append(_like(target, _param("target", String)))
    if c.instrument:
        out.append(func.upper(instrument) == _param("instrument", String))
    if c.mode:
        out.append(func.upper(mode) == _param("mode", String))
    if c.filter:
        out.append(_like(setup, _param("filter", String)))
    if c.night_from:
        out.append(night >= _param("night_from", Date))
    if c.night_to:
        out.append(night <= _param("night_to", Date))
    if c.programme:
        out.append(programme_key_sql(prog_id) == _param("programme", String))
    return out


def _dataset_conditions(c: Any, ds: Any = Dataset) -> list[ColumnElement[bool]]:
    """Conditions over ``datasets`` (or the columns ``ds`` of an alias of it); ``c`` is a
    :func:`_shape`."""
    out = _observation_conditions(c, ds.target, ds.instrument, ds.mode, ds.setup, ds.night, ds.prog_id)
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


def _paged(query: Select) -> Select:
    """``query`` with its total as a window count (``count(*) OVER ()``) and the page's bound
    offset and limit."""
    total_column = func.count().over().label("_total")
    return query.add_columns(total_column).offset(_param("offset", Integer)).limit(_param("limit", Integer))


def _dicts(result: Any) -> list[dict[str, Any]]:
    """The rows of ``result`` as dicts keyed by plain ``str``: SQLAlchemy's column labels are
    ``str`` subclasses, which JSON serialisers (pydantic's, behind FastAPI) handle ~100x slower
    than ``str`` keys: serialising a page of 50 products took ~5 ms (benchmarks/RESULTS.md)."""
    keys = [str(key) for key in result.keys()]
    return [dict(zip(keys, row, strict=True)) for row in result]


def _page(
    conn: Connection, query: Select, c: Criteria, params: dict[str, Any], paged: Select | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """(total matches, rows of the page as dicts), ``params`` bound. The total comes with the
    page as a window count (``count(*) OVER ()``, ``paged``: :func:`_paged` of ``query``): the
    visibility clause is evaluated once, not twice; a page past the end needs a separate count."""
    rows = _dicts(conn.execute(paged if paged is not None else _paged(query), params))
    if rows:
        total = rows[0]["_total"]
    elif c.offset == 0:
        total = 0
    else:
        counting = query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
        total = conn.scalar(counting, params)
    for row in rows:
        del row["_total"]
    return int(total or 0), rows


# -- files ------------------------------------------------------------------------------------

FILE_SORTS = {"id": File.id, "date": File.date_obs, "target": File.target, "instrument": File.instrument}


def search_files(conn: Connection, c: Criteria, visible: ColumnElement[bool]) -> Page:
    """Current versions of catalogued files matching ``c`` that ``visible`` lets through."""
    c.check()
    shape, params = _shape(c), _criteria_params(c)
    conditions = [
        File.is_current,
        visible,
        *_file_conditions(shape),
        *_observation_conditions(
            shape, File.target, File.instrument, File.mode, File.filter, File.night, File.prog_id
        ),
    ]
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
    total, rows = _page(conn, _sorted(query, FILE_SORTS, c), c, params)
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
    ).where(visible, *_dataset_conditions(_shape(c)))
    total, rows = _page(conn, _sorted(query, DATASET_SORTS, c), c, _criteria_params(c))
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


def _target_matches(pattern: BindParameter[Any]) -> ColumnElement[bool]:
    """Over ``products``: the product's target or its dataset's matches ``pattern`` (LIKE).

    A UNION of the two sets of product ids, not ``target LIKE p OR dataset_id IN (...)``: each
    side is then estimated (and can use its trigram index) on its own table; the OR was
    estimated at half of the products, which made PostgreSQL hash every dataset for the join of
    the results (EXPLAIN in benchmarks/RESULTS.md)."""
    own, through = Product.__table__.alias(), Product.__table__.alias()
    named = _datasets_alias()
    of_product = select(own.c.id).where(_like(own.c.target, pattern))
    of_dataset = select(through.c.id).where(
        through.c.dataset_id.in_(select(named.c.id).where(_like(named.c.target, pattern)))
    )
    return Product.id.in_(union(of_product, of_dataset))


def _product_query(shape: Any, visible: ColumnElement[bool]) -> tuple[Select, Select]:
    """The product search of a :func:`_shape` (criteria bound as :func:`_param`) filtered by
    ``visible``: the sorted query of every match and its page (:func:`_paged`)."""
    # the dataset columns come from an alias: the visibility clause has its own correlated
    # subqueries over ``datasets``, which must not be correlated to the joined table
    ds_table = _datasets_alias()
    ds = ds_table.c
    conditions: list[ColumnElement[bool]] = [Product.is_current]
    dataset_conditions = _dataset_conditions(SimpleNamespace(**{**vars(shape), "target": None}), ds)
    if shape.target:
        conditions.append(_target_matches(_param("target", String)))
    conditions.extend(dataset_conditions)
    if shape.level:
        conditions.append(Product.level == _param("level", Integer))
    if shape.product_type:
        conditions.append(Product.product_type == _param("product_type", String))
    if shape.algorithm:
        conditions.append(Product.summary["algorithm"].as_string() == _param("algorithm", String))
    if shape.has_detections is not None:
        detections = Product.summary["detections"].as_string()
        has = and_(detections.is_not(None), detections != "[]")
        conditions.append(has if shape.has_detections else ~has)
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
    query = _sorted(query, _product_sorts(SimpleNamespace(**sort_columns)), shape)
    return query, _paged(query)


#: built product searches, by (shape, visibility key): a search's statement is built and its
#: SQLAlchemy cache key computed once per kind of search and of user, not once per request
_PRODUCT_QUERIES: dict[tuple[Any, ...], tuple[Select, Select]] = {}
_PRODUCT_QUERIES_MAX = 512


def _cached_product_query(shape: Any, visible: VisibilityFilter) -> tuple[Select, Select]:
    key = (tuple(sorted(vars(shape).items())), visible.key)
    found = _PRODUCT_QUERIES.get(key)
    if found is None:
        found = _product_query(shape, visible.clause)
        if len(_PRODUCT_QUERIES) >= _PRODUCT_QUERIES_MAX:  # bounded: start again
            _PRODUCT_QUERIES.clear()
        _PRODUCT_QUERIES[key] = found
    return found


def search_products(conn: Connection, c: Criteria, visible: ColumnElement[bool] | VisibilityFilter) -> Page:
    """Current products matching ``c`` that ``visible`` lets through.

    ``visible``: a visibility clause, or a :class:`~hcdc.archive.access.VisibilityFilter`
    (:meth:`AccessContext.products_filter`), whose SQL is the same for every user of a kind: the
    statement is then built once per shape of search and kind of user, and the user, the clock
    and the criteria are bound at each execution (the database decides every time).

    ``algorithm``, ``has_detections`` and ``contrast_05_max`` read the product's summary (JSON)
    in SQL, the same way on SQLite and PostgreSQL.
    """
    c.check()
    shape, params = _shape(c), _criteria_params(c)
    if isinstance(visible, VisibilityFilter):
        query, paged = _cached_product_query(shape, visible)
        params.update(visible.params)
    else:
        query, paged = _product_query(shape, visible)
    if c.contrast_05_max is not None:
        # the contrast lives in a JSON list: filter this part in Python, over every match
        rows = _dicts(conn.execute(query, params))
        rows = [r for r in rows if (v := contrast_at(r["summary"])) is not None and v <= c.contrast_05_max]
        total, rows = len(rows), rows[c.offset : c.offset + c.limit]
    else:
        total, rows = _page(conn, query, c, params, paged)
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
    total, rows = _page(conn, query.order_by(Job.id.desc()), c, _criteria_params(c))
    return Page(total, offset, limit, rows)


__all__ = [
    "MAX_PAGE_SIZE",
    "Criteria",
    "Page",
    "SearchError",
    "archive_counts",
    "contrast_at",
    "like_pattern",
    "search_datasets",
    "search_files",
    "search_jobs",
    "search_products",
]
