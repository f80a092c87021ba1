"""Parsing ADQL with sqlglot's grammar (T-SQL flavour: ADQL's ``SELECT TOP n`` is T-SQL's).

sqlglot builds a real syntax tree (never string substitution); a text that is not exactly one
SELECT (or set operation of SELECTs) is refused, so ``SELECT ...; DROP TABLE x`` fails here.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

MAX_QUERY_CHARS = 100_000


class AdqlError(ValueError):
    """An ADQL query that is refused (syntax, table, function, ...); the message says why."""


def parse_adql(text: str) -> exp.Expression:
    """The syntax tree of one ADQL SELECT (raises :class:`AdqlError`)."""
    if not text or not text.strip():
        raise AdqlError("empty QUERY")
    if len(text) > MAX_QUERY_CHARS:
        raise AdqlError(f"query longer than {MAX_QUERY_CHARS} characters")
    try:
        statements = [s for s in sqlglot.parse(text, read="tsql") if s is not None]
    except (ParseError, TokenError) as exc:
        raise AdqlError(f"ADQL syntax error: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise AdqlError("exactly one SELECT statement is allowed (no ';' separated statements)")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Drop | exp.Create | exp.Alter):
            raise AdqlError(f"only SELECT queries are allowed, not {tree.key.upper()}")
        raise AdqlError("ADQL syntax error: a query is one SELECT statement")
    return tree
