"""Interferometry commands: ``hcdc granules`` (OiDB granules of the catalogued OIFITS files).

Thin: the listing is :func:`hcdc.archive.granules.list_granules`, filtered by
``archive.access`` like every other listing.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hcdc.cli.common import JSON_OPTION, LIMIT_OPTION, ROOT_OPTION, TARGET_OPTION, open_catalogue
from hcdc.cli.output import emit_json, print_table

#: Columns of the table view (``--json`` prints every field, the validation counts included).
TABLE_COLUMNS = (
    "id",
    "file",
    "target_name",
    "instrument_name",
    "facility_name",
    "t_min",
    "t_max",
    "t_exptime",
    "nb_vis",
    "nb_vis2",
    "nb_t3",
    "nb_channels",
    "quality_level",
    "severe",
)


def granules_command(
    target: str | None = TARGET_OPTION,
    instrument: str | None = typer.Option(
        None, "--instrument", help="INSNAME prefix, case-insensitive (OiDB's LIKE 'PIONIER%')."
    ),
    file_id: int | None = typer.Option(None, "--file", help="Only the granules of this file id."),
    all_versions: bool = typer.Option(False, "--all-versions", help="Include superseded file versions."),
    limit: int = LIMIT_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List OiDB granules (one target x INSNAME x night x OIFITS file).

    Fields and units as in OiDB: s_ra/s_dec deg, t_min/t_max MJD, t_exptime s (minimum
    INT_TIME), em_min/em_max m, nb_* table rows. calib_level, data_rights, obs_release_date and
    collection stay empty until collections and embargoes apply to granules.
    """
    from hcdc.archive.access import AccessContext, local_operator
    from hcdc.archive.granules import list_granules

    with open_catalogue(root) as catalogue, catalogue.engine.connect() as conn:
        access = AccessContext(conn, local_operator())  # the shell's operator sees everything (R1)
        rows = list_granules(
            conn,
            visible=access.files_clause(),
            target=target,
            instrument=instrument,
            file_id=file_id,
            all_versions=all_versions,
            limit=limit,
        )
    if json_output:
        emit_json(rows)
        return
    for row in rows:
        row["file"] = Path(row["file"]).name
        row["severe"] = (row["validation"] or {}).get("SEVERE")
    print_table(f"Granules ({len(rows)})", TABLE_COLUMNS, rows)


def register(app: typer.Typer) -> None:
    """Add the interferometry commands to the ``hcdc`` application."""
    app.command("granules")(granules_command)
