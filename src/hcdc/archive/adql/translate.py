"""ADQL syntax tree -> SQL of the catalogue's database (PostgreSQL + pgSphere, or SQLite).

* Every published table reference becomes the caller's subquery (:class:`TableSource`: for
  ``ivoa.obscore`` the rights-filtered SELECT of :func:`hcdc.archive.obscore.published_select`),
  spliced in through an unguessable placeholder name, so no query can reach the physical tables.
* ``*`` is expanded to the published columns (their metadata become the result's FIELDs).
* Geometry: on PostgreSQL ``POINT`` -> ``spoint``, ``CIRCLE`` -> ``scircle``, ``POLYGON``/``BOX``
  -> ``spoly``, ``CONTAINS`` -> ``@``, ``INTERSECTS`` -> ``&&``, ``DISTANCE`` -> ``<->``,
  ``AREA`` -> ``area``; a ``1 = CONTAINS(POINT(s_ra, s_dec), ...)`` predicate becomes
  ``spoint(radians(s_ra), radians(s_dec)) @ ...``, the expression of the GiST index. On SQLite
  the functions of :mod:`hcdc.archive.adql.geometry`, with a bounding-box prefilter on
  ``s_dec``/``s_ra`` (indexed) for a point-in-circle predicate.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from sqlglot import exp

from hcdc.archive.adql.geometry import box_polygon
from hcdc.archive.adql.parse import AdqlError, parse_adql
from hcdc.archive.adql.validate import check_functions, function_name, table_key
from hcdc.archive.obscore import ColumnSpec

GEOMETRY_VALUES = frozenset({"POINT", "CIRCLE", "POLYGON", "BOX"})
#: STC-S polygon text of ObsCore's s_region -> pgSphere spoly (vertices in degrees)
_PG_REGION = (
    "CAST('{{' || rtrim(regexp_replace(trim(substring({col} from 14)), "
    "'([-0-9.eE+]+) ([-0-9.eE+]+)( |$)', '(\\1d,\\2d),', 'g'), ',') || '}}' AS spoly)"
)


@dataclass(frozen=True)
class TableSource:
    """A published table: its ADQL name (``schema.table``), the SQL that yields its rows for this
    caller and database, and its columns (in order)."""

    name: str
    sql: str
    columns: tuple[ColumnSpec, ...]

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[-1]

    def column(self, name: str) -> ColumnSpec | None:
        lowered = name.strip('"').lower()
        return next((c for c in self.columns if c.name.strip('"').lower() == lowered), None)


@dataclass
class CompiledQuery:
    """The SQL to run and what its output columns are (None: computed, typed from the values)."""

    sql: str
    names: list[str]
    columns: list[ColumnSpec | None]
    tables: list[str] = field(default_factory=list)


def _sources_by_spelling(sources: dict[str, TableSource]) -> dict[str, str]:
    names = {key.lower(): key for key in sources}
    shorts: dict[str, list[str]] = {}
    for key, source in sources.items():
        shorts.setdefault(source.short_name.lower(), []).append(key)
    for short, keys in shorts.items():
        if len(keys) == 1 and short not in names:
            names[short] = keys[0]
    return names


def _tables_of(select: exp.Select, spelling: dict[str, str], sources: dict[str, TableSource]):  # noqa: ANN202
    """(alias, source) of the tables in this SELECT's FROM and JOINs, in order."""
    found = []
    for node in [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]:
        if node is None:
            continue
        table = node.this
        if isinstance(table, exp.Table):
            key = table_key(table, spelling)
            alias = table.alias or sources[key].short_name
            found.append((alias.lower(), sources[key]))
        elif isinstance(table, exp.Subquery) and table.alias:
            found.append((table.alias.lower(), None))
    return found


def _expand_stars(select: exp.Select, tables) -> None:  # noqa: ANN001
    expanded: list[exp.Expression] = []
    changed = False
    for item in select.expressions:
        star_of = None
        if isinstance(item, exp.Star):
            star_of = ""
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            star_of = item.table.lower()
        if star_of is None:
            expanded.append(item)
            continue
        changed = True
        matched = False
        for alias, source in tables:
            if source is None or (star_of and alias != star_of):
                continue
            matched = True
            expanded += [
                exp.column(exp.to_identifier(c.name.strip('"'), quoted=c.name.startswith('"')), table=alias)
                for c in source.columns
            ]
        if not matched:
            raise AdqlError(f"cannot expand {item.sql()}: no published table {star_of!r} in FROM")
    if changed:
        select.set("expressions", expanded)


def _resolve(column: exp.Column, tables) -> ColumnSpec | None:  # noqa: ANN001
    qualifier = column.table.lower() if column.table else None
    for alias, source in tables:
        if source is None or (qualifier and alias != qualifier):
            continue
        spec = source.column(column.name)
        if spec is not None:
            return spec
    return None


def _check_columns(select: exp.Select, tables) -> None:  # noqa: ANN001
    """Unknown columns of published tables are refused here with a clear message."""
    aliases = {a.alias.lower() for a in select.expressions if isinstance(a, exp.Alias)}
    if any(source is None for _, source in tables):
        return  # columns of a derived table: the database checks them
    for column in select.find_all(exp.Column):
        if column.find_ancestor(exp.Select) is not select or isinstance(column.this, exp.Star):
            continue
        if _resolve(column, tables) is None and column.name.lower() not in aliases:
            raise AdqlError(f"unknown column {column.sql(dialect='tsql')!r}")


# --------------------------------------------------------------------------------------------
# geometry


def _args(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Contains):
        return [node.this, node.expression]
    args = list(node.expressions)
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        args = args[1:]  # the coordinate system ('ICRS', '' ...): ICRS assumed
    return args


def _number(node: exp.Expression) -> float:
    if isinstance(node, exp.Neg):
        return -_number(node.this)
    if isinstance(node, exp.Paren):
        return _number(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    raise AdqlError(f"POLYGON and BOX take numbers only, not {node.sql(dialect='tsql')!r}")


def _geometry_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Contains):
        return "CONTAINS"
    if isinstance(node, exp.Anonymous) and function_name(node) in (
        GEOMETRY_VALUES | {"INTERSECTS", "DISTANCE", "AREA", "COORD1", "COORD2"}
    ):
        return function_name(node)
    return None


class _Geometry:
    """Translates geometry nodes for one dialect (``postgres`` or ``sqlite``)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.pg = dialect == "postgres"

    def sql(self, node: exp.Expression) -> str:
        return node.transform(self.visit).sql(dialect=self.dialect)

    def region(self, node: exp.Expression) -> str:
        """SQL of a geometry value (a constructor, or the s_region column)."""
        name = _geometry_name(node)
        if isinstance(node, exp.Column) and node.name.lower() == "s_region":
            col = node.sql(dialect=self.dialect)
            return _PG_REGION.format(col=col) if self.pg else f"adql_region({col})"
        if name not in GEOMETRY_VALUES:
            raise AdqlError(
                f"a geometry (POINT, CIRCLE, POLYGON, BOX or s_region) is expected, not {node.sql()!r}"
            )
        args = _args(node)
        if name == "POINT":
            a, b = (self.sql(x) for x in args)
            return f"spoint(radians({a}), radians({b}))" if self.pg else f"adql_point({a}, {b})"
        if name == "CIRCLE":
            if len(args) == 2:
                centre, radius = self.region(args[0]), self.sql(args[1])
                return (
                    f"scircle({centre}, radians({radius}))"
                    if self.pg
                    else f"adql_circle_at({centre}, {radius})"
                )
            a, b, r = (self.sql(x) for x in args)
            if self.pg:
                return f"scircle(spoint(radians({a}), radians({b})), radians({r}))"
            return f"adql_circle({a}, {b}, {r})"
        numbers = [_number(x) for x in args]
        if name == "BOX":
            if len(numbers) != 4:
                raise AdqlError("BOX takes a centre (ra, dec), a width and a height")
            numbers = box_polygon(*numbers)
        if len(numbers) < 6 or len(numbers) % 2:
            raise AdqlError("POLYGON takes at least three (ra, dec) vertices")
        if self.pg:
            pairs = ",".join(f"({numbers[i]!r}d,{numbers[i + 1]!r}d)" for i in range(0, len(numbers), 2))
            return f"spoly '{{{pairs}}}'"
        return "adql_polygon(" + ", ".join(repr(n) for n in numbers) + ")"

    def predicate(self, name: str, node: exp.Expression, truth: bool) -> str:
        a, b = _args(node)
        if self.pg:
            op = "@" if name == "CONTAINS" else "&&"
            text = f"({self.region(a)} {op} {self.region(b)})"
            return text if truth else f"(NOT {text})"
        fast = self._sqlite_cone(a, b) if name == "CONTAINS" and truth else None
        if fast is not None:
            return fast
        function = "adql_contains" if name == "CONTAINS" else "adql_intersects"
        return f"({function}({self.region(a)}, {self.region(b)}) = {1 if truth else 0})"

    def _sqlite_cone(self, a: exp.Expression, b: exp.Expression) -> str | None:
        """POINT(col, col) in CIRCLE(numbers): an indexed bounding box, then the exact distance."""
        if _geometry_name(a) != "POINT" or _geometry_name(b) != "CIRCLE":
            return None
        point, circle = _args(a), _args(b)
        if len(point) != 2 or len(circle) != 3 or not all(isinstance(x, exp.Column) for x in point):
            return None
        try:
            ra0, dec0, radius = (_number(x) for x in circle)
        except AdqlError:
            return None
        ra, dec = (self.sql(x) for x in point)
        low, high = dec0 - radius, dec0 + radius
        box = [f"{dec} BETWEEN {low!r} AND {high!r}"]
        if abs(dec0) + radius < 89.0:
            half = radius / math.cos(math.radians(abs(dec0) + radius))
            lo, hi = ra0 - half, ra0 + half
            if lo < 0 or hi > 360:
                box.append(f"({ra} >= {lo % 360!r} OR {ra} <= {hi % 360!r})")
            else:
                box.append(f"{ra} BETWEEN {lo!r} AND {hi!r}")
        exact = f"adql_distance_deg({ra}, {dec}, {ra0!r}, {dec0!r}) <= {radius!r}"
        return "(" + " AND ".join([*box, exact]) + ")"

    def value(self, name: str, node: exp.Expression) -> str:
        args = _args(node)
        if name in ("CONTAINS", "INTERSECTS"):
            return f"(CASE WHEN {self.predicate(name, node, True)} THEN 1 ELSE 0 END)"
        if name == "DISTANCE":
            if len(args) == 4:
                args = [
                    exp.Anonymous(this="POINT", expressions=args[:2]),
                    exp.Anonymous(this="POINT", expressions=args[2:]),
                ]
            p, q = (self.region(x) for x in args)
            return f"degrees({p} <-> {q})" if self.pg else f"adql_distance({p}, {q})"
        if name == "AREA":
            region = self.region(args[0])
            return (
                f"(area({region}) * (180.0 / pi()) * (180.0 / pi()))" if self.pg else f"adql_area({region})"
            )
        if name in ("COORD1", "COORD2"):
            region = self.region(args[0])
            if self.pg:
                return f"degrees({'long' if name == 'COORD1' else 'lat'}({region}))"
            return f"adql_{name.lower()}({region})"
        raise AdqlError(f"{name} is a geometry value: select s_region or coordinates instead")

    def visit(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.EQ | exp.NEQ):
            sides = [node.this, node.expression]
            for geo, other in (sides, sides[::-1]):
                name = _geometry_name(geo)
                if (
                    name in ("CONTAINS", "INTERSECTS")
                    and isinstance(other, exp.Literal)
                    and other.this in ("0", "1")
                ):
                    truth = (other.this == "1") == isinstance(node, exp.EQ)
                    return exp.Var(this=self.predicate(name, geo, truth))
            return node
        name = _geometry_name(node)
        if name is None:
            return node
        return exp.Var(this=self.value(name, node))


# --------------------------------------------------------------------------------------------


def compile_adql(text: str, sources: dict[str, TableSource], dialect: str) -> CompiledQuery:
    """Parse, check and translate one ADQL query for ``dialect`` (``postgresql`` or ``sqlite``)."""
    target = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite"}.get(dialect)
    if target is None:
        raise ValueError(f"unsupported database dialect {dialect!r}")
    tree = parse_adql(text)
    check_functions(tree)
    spelling = _sources_by_spelling(sources)
    selects = list(tree.find_all(exp.Select))
    per_select = {}
    for select in selects:
        tables = _tables_of(select, spelling, sources)
        _expand_stars(select, tables)
        per_select[id(select)] = tables
    for select in selects:
        _check_columns(select, per_select[id(select)])
    top = tree if isinstance(tree, exp.Select) else next(tree.find_all(exp.Select))
    names, columns = [], []
    for item in top.expressions:
        inner = item.this if isinstance(item, exp.Alias) else item
        name = item.alias_or_name if isinstance(item, exp.Alias | exp.Column) else ""
        names.append(name if name and name != "*" else f"col{len(names) + 1}")
        columns.append(_resolve(inner, per_select[id(top)]) if isinstance(inner, exp.Column) else None)
    if len(set(n.lower() for n in names)) != len(names):
        names = _unique(names)
    # splice the sources in through placeholders; drop schema qualifiers of column references
    token = uuid.uuid4().hex
    placeholders: dict[str, str] = {}
    used = []
    for table in list(tree.find_all(exp.Table)):
        key = table_key(table, spelling)
        source = sources[key]
        placeholder = f"hcdc_src_{token}_{len(placeholders)}"
        placeholders[placeholder] = f"({source.sql})"
        used.append(key)
        alias = table.alias or source.short_name
        table.replace(
            exp.Table(
                this=exp.to_identifier(placeholder), alias=exp.TableAlias(this=exp.to_identifier(alias))
            )
        )
    for column in tree.find_all(exp.Column):
        if column.args.get("db"):
            column.set("db", None)
            column.set("catalog", None)
    translated = tree.transform(_Geometry(target).visit)
    sql = translated.sql(dialect=target)
    for placeholder, subquery in placeholders.items():
        sql = sql.replace(placeholder, subquery)
    return CompiledQuery(sql, names, columns, used)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name.lower(), 0)
        seen[name.lower()] = count + 1
        out.append(name if count == 0 else f"{name}_{count}")
    return out
