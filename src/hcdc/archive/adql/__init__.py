"""ADQL 2.1 for the TAP service: parse (sqlglot), validate (only SELECT, only published tables and
allowed functions), translate (published tables become the caller's rights-filtered subqueries;
geometry becomes pgSphere on PostgreSQL and registered Python functions on SQLite).

Entry point: :func:`compile_adql`. Any refusal is an :class:`AdqlError` whose message says why.
"""

from hcdc.archive.adql.parse import AdqlError, parse_adql
from hcdc.archive.adql.translate import CompiledQuery, TableSource, compile_adql

__all__ = ["AdqlError", "CompiledQuery", "TableSource", "compile_adql", "parse_adql"]
