"""Survey tracking commands: ``hcdc survey import|status|list``.

Thin: through the catalogue facade (``view.granules``, whose work is in
:mod:`hcdc.archive.interferometry_survey`); who sees a survey is decided by ``archive.access``
(the survey's group and staff). ``--as USER`` shows what that account sees (default: the local
operator, an admin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hcdc.cli.common import JSON_OPTION, ROOT_OPTION, fail
from hcdc.cli.interferometry import AS_OPTION, _viewing, _when
from hcdc.cli.output import emit_json, print_table

survey_app = typer.Typer(help="Survey tracking: target lists and their progress.", no_args_is_help=True)


@survey_app.command("import")
def import_command(
    name: str = typer.Argument(..., help="Survey name (created on first import)."),
    targets: Path = typer.Argument(
        ..., help="CSV: name[, ra, dec (deg or sexagesimal), due (YYYY-MM-DD), note]."
    ),
    group: str | None = typer.Option(
        None, "--group", help="The group that follows the survey (new surveys)."
    ),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Import (add or update) a survey's target list."""
    from hcdc.archive.interferometry_survey import SurveyError

    try:
        with _viewing(root, as_user) as view:
            counts = view.granules.import_survey_targets(name, str(targets), group)
    except SurveyError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from None
    if json_output:
        emit_json({"survey": name, **counts})
    else:
        typer.echo(f"survey {name}: {counts['added']} target(s) added, {counts['updated']} updated")


@survey_app.command("status")
def status_command(
    name: str = typer.Argument(..., help="Survey name."),
    now: str | None = typer.Option(None, "--now", help="Evaluate at this UTC date (default: now)."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Each target's stage (planned, observed, reduced, calibrated, validated, published),
    computed from the catalogue, the counts per stage and the late targets."""
    moment = _when(now, "--now")
    with _viewing(root, as_user) as view:
        status = view.granules.survey(name, now=moment)
    if json_output:
        emit_json(status)
        return
    counts = ", ".join(f"{n} {stage}" for stage, n in status["counts"].items())
    typer.echo(
        f"survey {status['survey']} (group {status['group']}): {status['targets']} target(s): {counts}"
    )
    rows: list[dict[str, Any]] = [
        {**i, "late": "LATE" if i["late"] else "", "since": i["history"][-1]["at"]} for i in status["items"]
    ]
    print_table("Targets", ("name", "stage", "since", "due", "late"), rows)


@survey_app.command("list")
def list_command(
    as_user: str | None = AS_OPTION, json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION
) -> None:
    """The surveys this account may follow."""
    with _viewing(root, as_user) as view:
        rows = view.granules.surveys()
    if json_output:
        emit_json(rows)
    else:
        print_table("Surveys", ("name", "group", "targets", "created_at"), rows)


def register(app: typer.Typer) -> None:
    """Add ``hcdc survey`` to the application."""
    app.add_typer(survey_app, name="survey")
