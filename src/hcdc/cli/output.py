"""Shared console output for the CLI: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def _width(stream) -> int | None:  # noqa: ANN001 - a text stream
    """Terminal width for a terminal. When piped, tables are as wide as their content (no value
    cut with an ellipsis at 80 columns), so that scripts and grep see whole values."""
    # COLUMNS is not consulted when piped: test runners and CI export COLUMNS=80.
    return None if stream.isatty() else 1000


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


# C0 controls (ESC, CR, BS, ...), DEL and C1 controls: a header value or file name holding them
# could move the cursor, recolour or retitle the operator's terminal. Tabs are kept.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def escape_control(text: str) -> str:
    """``text`` with control characters written as visible escapes (``\\x1b``), for terminals.

    Values come from file headers and names that anyone can write; JSON output is left exact
    (``json.dumps`` escapes control characters itself).
    """
    # bytes of a file name that are not UTF-8 (surrogates in Python) would make printing fail
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")  # \xff
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def cell(value: Any) -> str:
    """A table cell: the value as text, control characters escaped, rich markup disabled."""
    return "" if value is None else escape_markup(escape_control(str(value)))


def emit_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (dates and paths as strings)."""
    print(json.dumps(payload, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Print rows (mappings keyed by column name) as a rich table."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    console.print(table)


def progress_bar(disable: bool = False) -> Progress:
    """A rich progress bar on stderr (so ``--json`` output on stdout stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disable,
    )
