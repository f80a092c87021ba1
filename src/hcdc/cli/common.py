"""What the command modules share: common options, error handling, opening the data centre,
object ids and the product view.

Every command module imports these from here (never from another command module), so the
command modules do not depend on each other. The archive modules (SQLAlchemy, Alembic, astropy)
are imported inside the functions, so that ``hcdc --help`` and unrelated commands start fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hcdc.cli.output import cell, console, err_console, print_table

if TYPE_CHECKING:
    from hcdc.archive.catalogue import UserCatalogue
    from hcdc.archive.db import Catalogue
    from hcdc.pipeline.operations.catalogue import ProcessingCatalogue
    from hcdc.pipeline.operations.operator import OperatorCatalogue

ROOT_OPTION = typer.Option(
    None, "--root", envvar="HCDC_ROOT", help="Data-centre directory (default: the current directory)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON on stdout instead of tables.")
NIGHT_OPTION = typer.Option(None, "--night", help="Night start date YYYY-MM-DD.")
INSTRUMENT_OPTION = typer.Option(None, "--instrument", help="Instrument name, e.g. SPHERE, NACO, OIFITS.")
TARGET_OPTION = typer.Option(None, "--target", help="Target name (case-insensitive substring).")
LIMIT_OPTION = typer.Option(100, "--limit", help="At most this many rows.")
AS_OPTION = typer.Option(
    None, "--as", help="See as this account (its rights are checked); default: the local operator (admin)."
)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr and exit with status ``code``."""
    err_console.print(f"[bold red]error:[/] {cell(message)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn catalogue/query errors into a one-line message and exit status 1."""
    from hcdc.archive.db import ArchiveError
    from hcdc.archive.queries import QueryError

    try:
        yield
    except (ArchiveError, QueryError, LookupError) as exc:
        fail(str(exc))


@contextmanager
def open_catalogue(root: Path | None) -> Iterator[Catalogue]:
    """The data centre at ``root`` (or ``$HCDC_ROOT`` / the current directory), closed on exit;
    its errors become one-line messages."""
    from hcdc.archive.db import open_data_centre

    with errors():
        catalogue = open_data_centre(root)
    try:
        with errors():
            yield catalogue
    finally:
        catalogue.close()


@contextmanager
def viewing(
    root: Path | None, as_user: str | None = None, refusals: tuple[type[Exception], ...] = ()
) -> Iterator[tuple[Catalogue, ProcessingCatalogue]]:
    """The data centre and its catalogue facade
    (:class:`~hcdc.pipeline.operations.catalogue.ProcessingCatalogue`: reads, the user's writes,
    the processing queue) as the account ``--as`` names sees it, else as the shell's operator
    (who sees everything). Objects it may not see are answered as missing; both, refusals
    (``AccessDenied``) and the ``refusals`` a command module names become one-line errors."""
    from hcdc.archive.access import AccessDenied, load_principal, local_operator
    from hcdc.pipeline.operations.catalogue import ProcessingCatalogue

    try:
        with open_catalogue(root) as catalogue:
            if as_user:
                with catalogue.engine.connect() as conn:
                    actor = load_principal(conn, as_user)
            else:
                actor = local_operator()
            with catalogue.as_user(actor, facade=ProcessingCatalogue) as view:
                yield catalogue, view  # type: ignore[misc]
    except (AccessDenied, *refusals) as exc:
        fail(str(exc))


@contextmanager
def operating(
    root: Path | None, refusals: tuple[type[Exception], ...] = ()
) -> Iterator[tuple[ProcessingCatalogue, OperatorCatalogue]]:
    """The shell's operator's catalogue facade and the operator's entry point to the data centre
    (:class:`~hcdc.pipeline.operations.operator.OperatorCatalogue`: ingest, associations,
    quarantine, fsck, queueing, the worker, watch, reruns; rule A1 asked of
    :mod:`hcdc.archive.access`), errors and refusals as :func:`viewing` makes them."""
    with viewing(root, refusals=refusals) as (catalogue, view):
        yield view, view.operations(catalogue)


_ID_PATTERN = re.compile(r"^(?:(?P<kind>f|file|d|ds|dataset|p|product)[:#]?)?(?P<id>\d+)$", re.IGNORECASE)
_KINDS = {"f": "file", "d": "dataset", "p": "product"}


def parse_object_id(text: str) -> tuple[str, int]:
    """``"12"``/``"f12"``/``"file:12"`` -> ("file", 12); ``"d3"``/``"dataset:3"`` -> ("dataset", 3);
    ``"p5"``/``"product:5"`` -> ("product", 5)."""
    from hcdc.archive.queries import QueryError

    match = _ID_PATTERN.match(text.strip())
    if match is None:
        raise QueryError(
            f"not a file, dataset or product id: {text!r} (use 12 or f12 for a file, d3 for a dataset, "
            "p5 for a product)"
        )
    return _KINDS[(match["kind"] or "f")[0].lower()], int(match["id"])


def resolve_dataset(view: UserCatalogue, dataset: str) -> int:
    """Id of the dataset ``3`` / ``d3`` / ``dataset:3`` or of that key, which the user of
    ``view`` may see (one hidden is answered as missing)."""
    match = _ID_PATTERN.match(dataset.strip())
    if match and (match["kind"] is None or match["kind"].lower().startswith("d")):
        found = view.find_datasets(dataset_id=int(match["id"]))
    else:
        found = view.find_datasets(key=dataset)
    if not found:
        raise LookupError(f"no dataset {dataset!r} (give a dataset id or key; see 'hcdc datasets')")
    return found[0]


def print_mapping(title: str, mapping: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """A two-column (field, value) table of ``mapping``, without the keys in ``skip``."""
    rows = [{"field": k, "value": v} for k, v in mapping.items() if k not in skip]
    print_table(title, ["field", "value"], rows)


def _detection_rows(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for d in (summary or {}).get("detections", []) or []:
        rows.append(
            {
                "sep_mas": f"{d.get('separation_mas', float('nan')):.1f}",
                "pa_deg": f"{d.get('pa_deg', float('nan')):.2f}",
                "snr": f"{d.get('snr', float('nan')):.1f}",
                "contrast": f"{d['contrast']:.3g}" if d.get("contrast") is not None else None,
            }
        )
    return rows


def print_product(product_id: int, detail: dict[str, Any]) -> None:
    """Tables of one product (as ``hcdc.archive.products.product_detail`` describes it)."""
    print_mapping(
        f"Product {product_id}", detail, skip=("files", "previews", "versions", "summary", "provenance")
    )
    print_table("Files", ["role", "path", "size", "sha256", "media_type"], detail["files"])
    print_table("Versions", ["id", "version", "current", "created_at"], detail["versions"])
    prov = {k: v for k, v in detail["provenance"].items() if k != "parameters"}
    print_mapping("Provenance", prov)
    print_mapping("Parameters", detail["provenance"]["parameters"] or {})
    detections = _detection_rows(detail["summary"])
    if detections:
        print_table("Detections", ["sep_mas", "pa_deg", "snr", "contrast"], detections)
    for preview in detail["previews"]:
        console.print(f"  preview: {preview}", highlight=False)
