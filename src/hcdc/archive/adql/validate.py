"""What an ADQL query may use: the published tables (given by the caller) and an allow-list of
functions. Everything else is refused before any SQL is generated."""

from __future__ import annotations

from sqlglot import exp

from hcdc.archive.adql.parse import AdqlError

#: ADQL 2.1 geometry functions (translated by hcdc.archive.adql.translate)
GEOMETRY_FUNCTIONS = frozenset(
    {"POINT", "CIRCLE", "POLYGON", "BOX", "CONTAINS", "INTERSECTS", "DISTANCE", "AREA", "COORD1", "COORD2"}
)
_ALLOWED_NAMES = (
    "Abs Ceil Floor Round Sqrt Exp Ln Log Pow Sin Cos Tan Asin Acos Atan Atan2 Cot Degrees Radians Pi "
    "Mod Trunc Rand Count Sum Avg Min Max Upper Lower Coalesce Cast Contains Length"
).split()
#: operators and clauses that sqlglot models as functions (AND, BETWEEN, IN, CASE ...)
_OPERATOR_NAMES = (
    "Connector Binary Not Paren Neg Case If Between In Is Like ILike Exists Distinct Any All".split()
)
ALLOWED_FUNCTIONS = tuple(
    getattr(exp, name) for name in _ALLOWED_NAMES + _OPERATOR_NAMES if hasattr(exp, name)
)
#: node types never allowed anywhere in a query
FORBIDDEN_NODES = tuple(
    getattr(exp, name)
    for name in (
        "With Into Command Insert Update Delete Drop Create Alter Merge Lock Placeholder Parameter"
    ).split()
    if hasattr(exp, name)
)


def function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    return node.sql_name() if hasattr(node, "sql_name") else type(node).__name__.upper()


def check_functions(tree: exp.Expression) -> None:
    """Refuse forbidden statements/clauses and functions outside the allow-list."""
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise AdqlError(f"{node.key.upper()} is not allowed in an ADQL query")
        if isinstance(node, exp.Func) and not isinstance(node, ALLOWED_FUNCTIONS):
            name = function_name(node)
            if not (isinstance(node, exp.Anonymous) and name in GEOMETRY_FUNCTIONS):
                raise AdqlError(
                    f"function {name} is not allowed (see /tap/capabilities for the ADQL features)"
                )


def table_key(table: exp.Table, names: dict[str, str]) -> str:
    """The published table (``schema.name``, lower case) that ``table`` names, else AdqlError.

    ``names`` maps each accepted spelling (``ivoa.obscore`` and, when unambiguous, ``obscore``)
    to the published table's key.
    """
    if table.args.get("catalog"):
        raise AdqlError(f"unknown table {table.sql()}")
    spelled = f"{table.db}.{table.name}".lower() if table.db else str(table.name).lower()
    if spelled not in names:
        raise AdqlError(
            f"unknown table {table.sql(dialect='tsql')!r}: queryable tables are "
            f"{', '.join(sorted({v for v in names.values()}))}"
        )
    return names[spelled]
