"""VO commands: ``hcdc vo rebuild-obscore`` (rewrite every ivoa.obscore row from the catalogue).

Ingest and product registration keep ObsCore in sync in their own transactions; the rebuild is
for a catalogue made before the VO layer, or after a change of the publishing rules (the
catalogue facade's administration: ``view.admin().rebuild_obscore()``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from hcdc.cli.common import JSON_OPTION, ROOT_OPTION, viewing
from hcdc.cli.output import emit_json

vo_app = typer.Typer(
    help="Virtual Observatory services (TAP, ObsCore): see docs/vo.md.", no_args_is_help=True
)


@vo_app.command("rebuild-obscore")
def rebuild_obscore_command(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """Delete and rewrite every ObsCore row (raw science files, Level 1/2 products, OIFITS granules)
    in one transaction, with the access rules' release dates."""
    with viewing(root) as (_, view):
        summary = view.admin().rebuild_obscore()
    if json_output:
        emit_json(summary.as_dict())
    else:
        typer.echo(
            f"ivoa.obscore: {summary.total} rows ({summary.files} raw files, {summary.products} products, "
            f"{summary.granules} granules)"
        )


def register(app: typer.Typer) -> None:
    """Add ``hcdc vo`` to the ``hcdc`` application."""
    app.add_typer(vo_app, name="vo")
